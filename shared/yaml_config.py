"""Loading YAML files into pydantic models, with every failure reported as key path and reason."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from shared.config_keys import ENV_MARK, issue_for, unknown_variables
from shared.errors import ConfigError, ConfigIssue

M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: Any, source: str, error: type[ConfigError] = ConfigError) -> M:
    """Validate parsed data as `model`; raises `error` naming each bad key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(source, [issue_for(model, err) for err in exc.errors()]) from exc


def read_yaml(path: str | Path, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """A YAML file's top-level mapping (empty for an empty file); raises `error` saying what is wrong."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(str(path), [ConfigIssue("", f"cannot read file: {exc.strerror}")]) from exc
    except yaml.YAMLError as exc:
        raise error(str(path), [ConfigIssue("", f"not valid YAML: {exc}")]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(str(path), [ConfigIssue("", "the file must hold a mapping of settings")])
    return data


def write_yaml_atomically(path: str | Path, data: dict[str, Any]) -> None:
    """Write `data` as YAML with `write_text_atomically`."""
    write_text_atomically(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write a file so that a reader (or a crash) sees the old file or the new one, never half of one
    and never none; the new one keeps the old one's mode, and the old one is kept beside it as
    `<name>.previous`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    if path.exists():
        shutil.copymode(path, tmp)
        shutil.copy2(path, path.with_name(f"{path.name}.previous"))
    tmp.replace(path)


def load_model(model: type[M], path: str | Path, error: type[ConfigError] = ConfigError) -> M:
    """Read a YAML file and validate it as `model`."""
    return validate_model(model, read_yaml(path, error), str(path), error)


class FileSettings(BaseSettings):
    """Settings read from a YAML file that the environment may override, e.g. a service's config."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The sources in order of precedence: the environment, then the file's values."""
        # The file's values arrive as init values; the environment takes precedence over them.
        return env_settings, init_settings


S = TypeVar("S", bound=FileSettings)


def load_settings(settings: type[S], path: str | Path) -> S:
    """Read a service's YAML file, apply the environment, validate; raises ConfigError per bad key."""
    return settings_from(settings, read_yaml(path), str(path))


def settings_from(settings: type[S], data: dict[str, Any], source: str) -> S:
    """Settings from a file's parsed mapping with the environment over it; raises ConfigError naming
    each bad key, or the environment variable where one set it (or names no setting at all)."""
    prefix = settings.model_config.get("env_prefix", "")
    unknown = unknown_variables(settings, prefix) if prefix else []
    try:
        loaded = settings(**data)
    except ValidationError as exc:
        issues = [issue_for(settings, err, prefix) for err in exc.errors()] + unknown
        raise ConfigError(_blamed(source, issues), issues) from exc
    if unknown:
        raise ConfigError("the environment", unknown)
    return loaded


def _blamed(source: str, issues: list[ConfigIssue]) -> str:
    """What the issues are about: the file, the environment, or both."""
    from_env = [ENV_MARK in issue.key for issue in issues]
    if all(from_env):
        return "the environment"
    return f"{source} and the environment" if any(from_env) else source
