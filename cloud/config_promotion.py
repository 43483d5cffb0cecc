"""Promoting a flow's estimator settings and recognition models to prod in the cloud config, and
rolling that back. The file is edited in place with its comments kept (ruamel.yaml round trip); what
each promotion replaced is kept in a history file beside it (`<name>.promotions.yml`), so a rollback
puts back exactly that, whatever else was edited since. The cloud and recognition services read the
file at start: the change takes effect when they restart."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from cloud.config import CloudConfig, load_cloud_config
from shared.errors import ConfigError
from shared.messages import PROD_FLOW
from shared.promotion import PromotionError
from shared.strict import StrictModel
from shared.yaml_config import load_model, write_yaml_atomically


class CloudPromotion(StrictModel):
    """What one promotion replaced in the cloud config (None: the key was unset)."""

    flow: str
    at: datetime
    prod_fse: dict[str, Any] | None = Field(description="flows.prod.fse as it was.")
    recognition: dict[str, Any] = Field(description="The `recognition` keys replaced, as they were.")
    flow_recognition: dict[str, Any] | None = Field(description="The promoted flow's recognition block.")


class CloudPromotions(StrictModel):
    """The history file: every promotion not rolled back, newest last."""

    promotions: list[CloudPromotion] = Field(default_factory=list)


def history_file(config: Path) -> Path:
    return config.with_name(f"{config.name}.promotions.yml")


def load_history(config: Path) -> CloudPromotions:
    path = history_file(config)
    return load_model(CloudPromotions, path) if path.exists() else CloudPromotions()


def last_promotion_at(config: Path) -> datetime | None:
    promotions = load_history(config).promotions
    return promotions[-1].at if promotions else None


@dataclass(frozen=True)
class CloudChange:
    """A checked new cloud config and history, not yet written."""

    config: Path
    text: str
    history: CloudPromotions
    summary: str

    def apply(self) -> None:
        """Write the config (the old one kept as `<name>.previous`), then the history."""
        tmp = self.config.with_name(f".{self.config.name}.tmp")
        tmp.write_text(self.text, encoding="utf-8")
        os.replace(self.config, self.config.with_name(f"{self.config.name}.previous"))
        os.replace(tmp, self.config)
        write_yaml_atomically(history_file(self.config), self.history.model_dump(mode="json"))


def plan_promotion(flow: str, config: Path, at: datetime) -> CloudChange | None:
    """The cloud config with `flow`'s estimator settings and recognition models made prod's (the flow
    keeps running, on prod's settings now); None when the flow has none of its own here."""
    if flow == PROD_FLOW:
        raise PromotionError("prod cannot be promoted to itself")
    before = load_cloud_config(config)
    own = before.flows.get(flow)
    if own is None or (
        own.fse == before.flows[PROD_FLOW].fse
        and before.recognition_models(flow) == before.recognition_models(PROD_FLOW)
    ):
        return None
    doc = _read(config)
    flows = doc.get("flows")
    if not isinstance(flows, dict) or not isinstance(flows.get(flow), dict):
        raise PromotionError(f"flows.{flow} is set by the environment, not in {config}: edit it there")
    prod = flows[PROD_FLOW] if isinstance(flows.get(PROD_FLOW), dict) else CommentedMap()
    flows[PROD_FLOW] = prod
    section = doc.get("recognition")
    recognition = section if isinstance(section, dict) else CommentedMap()
    candidate = flows[flow]
    replaced = {k: v for k, v in (candidate.get("recognition") or {}).items() if v is not None}
    record = CloudPromotion(
        flow=flow,
        at=at,
        prod_fse=_plain(prod.get("fse")),
        recognition={key: _plain(recognition.get(key)) for key in replaced},
        flow_recognition=_plain(candidate.get("recognition")),
    )
    _set(prod, "fse", candidate.get("fse"))
    for key, value in replaced.items():
        recognition[key] = value
    if replaced:
        doc["recognition"] = recognition
    candidate.pop("recognition", None)
    after = _check(doc, config)
    same_fse = after.flows[PROD_FLOW].fse == own.fse
    if not same_fse or after.recognition_models(PROD_FLOW) != before.recognition_models(flow):
        raise PromotionError(
            f"the environment overrides prod's estimator settings or recognition models of {config} "
            "(DEPOTWATCH_CLOUD_FLOWS__PROD__… or DEPOTWATCH_CLOUD_RECOGNITION__…): promote there"
        )
    history = load_history(config)
    return CloudChange(
        config,
        _dump(doc),
        CloudPromotions(promotions=[*history.promotions, record]),
        f"cloud: prod takes {flow}'s "
        + " and ".join(_what(own.fse != before.flows[PROD_FLOW].fse, replaced)),
    )


def plan_rollback(config: Path) -> CloudChange | None:
    """The cloud config as it was before its last promotion; None when there is none to undo."""
    history = load_history(config)
    if not history.promotions:
        return None
    *earlier, last = history.promotions
    doc = _read(config)
    flows = doc.get("flows")
    if not isinstance(flows, dict) or not isinstance(flows.get(last.flow), dict):
        raise PromotionError(f"flows.{last.flow} is no longer in {config}: cannot give it back its models")
    _set(flows[PROD_FLOW], "fse", last.prod_fse)
    recognition = doc.get("recognition")
    for key, value in last.recognition.items():
        _set(recognition, key, value)
    if isinstance(recognition, dict) and not recognition:
        doc.pop("recognition")
    _set(flows[last.flow], "recognition", last.flow_recognition)
    _check(doc, config)
    return CloudChange(
        config,
        _dump(doc),
        CloudPromotions(promotions=earlier),
        f"cloud: prod back on its settings from before {last.flow}'s promotion, "
        f"{last.flow} has its own again",
    )


def _what(fse: bool, recognition: dict[str, Any]) -> list[str]:
    parts = ["estimator settings"] if fse else []
    return parts + ([f"recognition ({', '.join(recognition)})"] if recognition else [])


def _set(mapping: Any, key: str, value: Any) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def _plain(value: Any) -> Any:
    """A round-trip node as plain data, for the history file."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    return yaml


def _read(config: Path) -> Any:
    return _yaml().load(config.read_text(encoding="utf-8"))


def _dump(doc: Any) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def _check(doc: Any, config: Path) -> CloudConfig:
    """The edited config as the services will read it (the environment included); never invalid."""
    probe = config.with_name(f".{config.name}.check")
    probe.write_text(_dump(doc), encoding="utf-8")
    try:
        return load_cloud_config(probe)
    except ConfigError as exc:
        raise PromotionError(f"the edited {config} would not be valid: {exc}") from exc
    finally:
        probe.unlink()
