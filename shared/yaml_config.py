"""Loading YAML files into pydantic models, with every failure reported as key path and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shared.errors import ConfigError, ConfigIssue

M = TypeVar("M", bound=BaseModel)


def issues_from(exc: ValidationError) -> list[ConfigIssue]:
    """One issue per pydantic error, keyed by its dotted location."""
    return [
        ConfigIssue(".".join(str(p) for p in err["loc"]), str(err["msg"]).removeprefix("Value error, "))
        for err in exc.errors()
    ]


def validate_model(model: type[M], data: Any, source: str, error: type[ConfigError] = ConfigError) -> M:
    """Validate parsed data as `model`; raises `error` naming each bad key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(source, issues_from(exc)) from exc


def load_model(model: type[M], path: str | Path, error: type[ConfigError] = ConfigError) -> M:
    """Read a YAML file and validate it as `model`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(str(path), [ConfigIssue("", f"cannot read file: {exc.strerror}")]) from exc
    except yaml.YAMLError as exc:
        raise error(str(path), [ConfigIssue("", f"not valid YAML: {exc}")]) from exc
    return validate_model(model, {} if data is None else data, str(path), error)
