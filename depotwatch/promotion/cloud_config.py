"""Promoting a flow's estimator settings and recognition models to prod in the cloud config, and
rolling that back. The file is edited in place with its comments kept (ruamel.yaml round trip); what
each promotion replaced and what it wrote are kept in a history file beside it
(`<name>.promotions.yml`), so a rollback puts back exactly what was there, and refuses when a key it
would put back was edited since. The cloud and recognition services read the file at start: the
change takes effect when they restart."""

from __future__ import annotations

import copy
import io
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, Field
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from cloud.config import CloudConfig, load_cloud_config
from depotwatch.promotion.edge_flows import PromotionError
from shared.errors import ConfigError
from shared.messages import PROD_FLOW
from shared.strict import StrictModel
from shared.yaml_config import (
    load_model,
    settings_from,
    write_text_atomically,
    write_yaml_atomically,
)

ENV_PREFIXES = ("DEPOTWATCH_CLOUD_FLOWS", "DEPOTWATCH_CLOUD_RECOGNITION")


class CloudPromotion(StrictModel):
    """What one promotion replaced in the cloud config and what it wrote (None: unset)."""

    flow: str
    at: AwareDatetime
    prod_fse: dict[str, Any] | None = Field(description="flows.prod.fse as it was.")
    recognition: dict[str, Any] = Field(description="The `recognition` keys replaced, as they were.")
    flow_recognition: dict[str, Any] | None = Field(description="The promoted flow's recognition block.")
    wrote_fse: dict[str, Any] | None = Field(description="flows.prod.fse as the promotion left it.")
    wrote_recognition: dict[str, Any] = Field(description="The `recognition` keys it wrote.")


class CloudPromotions(StrictModel):
    """The history file: every promotion not rolled back, newest last."""

    promotions: list[CloudPromotion] = Field(default_factory=list)


def history_file(config: Path) -> Path:
    """Where the promotions of a cloud config are kept: beside it."""
    return config.with_name(f"{config.name}.promotions.yml")


def load_history(config: Path) -> CloudPromotions:
    """The promotions of a cloud config not rolled back (none when it has no history file)."""
    path = history_file(config)
    return load_model(CloudPromotions, path) if path.exists() else CloudPromotions()


@dataclass(frozen=True)
class CloudChange:
    """A checked new cloud config and history, not yet written."""

    config: Path
    text: str
    history: CloudPromotions
    summary: str
    adds_record: bool

    def apply(self) -> None:
        """Write the history and the config (the old config kept as `<name>.previous`) in the order
        that leaves them consistent if the second write fails: a record added comes before the edit
        it describes (rolling back an edit that never happened writes back what is there), a record
        removed after the edit it undid."""
        if self.adds_record:
            self._write_history()
        write_text_atomically(self.config, self.text)
        if not self.adds_record:
            self._write_history()

    def _write_history(self) -> None:
        write_yaml_atomically(history_file(self.config), self.history.model_dump(mode="json"))


def plan_promotion(flow: str, config: Path, at: datetime) -> CloudChange | None:
    """The cloud config with `flow`'s estimator settings and recognition models made prod's (the flow
    keeps running, on prod's settings now); None when the flow has none of its own here."""
    if flow == PROD_FLOW:
        raise PromotionError("prod cannot be promoted to itself")
    before = load_cloud_config(config)
    own = before.flows.get(flow)
    if own is None:
        return None
    fse_differs = own.fse != before.flows[PROD_FLOW].fse
    if not fse_differs and before.recognition_models(flow) == before.recognition_models(PROD_FLOW):
        return None
    doc = _read(config)
    flows = doc.get("flows")
    if not isinstance(flows, dict) or not all(isinstance(flows.get(f), dict) for f in (flow, PROD_FLOW)):
        raise PromotionError(f"flows.{flow} or flows.{PROD_FLOW} is set by the environment, not in {config}")
    prod, candidate = flows[PROD_FLOW], flows[flow]
    recognition = _section(doc)
    replaced = {k: v for k, v in (candidate.get("recognition") or {}).items() if v is not None}
    record = CloudPromotion(
        flow=flow,
        at=at,
        prod_fse=_plain(prod.get("fse")),
        recognition={key: _plain(recognition.get(key)) for key in replaced},
        flow_recognition=_plain(candidate.get("recognition")),
        wrote_fse=_plain(candidate.get("fse")),
        wrote_recognition=_plain(replaced),
    )
    # A copy, not the node itself: ruamel would write one block as an anchor and its alias, and a
    # later edit of prod's settings would change the flow's too.
    _set(prod, "fse", copy.deepcopy(candidate.get("fse")))
    for key, value in replaced.items():
        recognition[key] = value
    candidate.pop("recognition", None)
    after = _check(doc, config)
    same_fse = after.flows[PROD_FLOW].fse == own.fse
    if not same_fse or after.recognition_models(PROD_FLOW) != before.recognition_models(flow):
        overrides = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIXES))
        raise PromotionError(
            f"the environment overrides what the promotion writes to {config} "
            f"({', '.join(overrides)}): promote there"
        )
    history = load_history(config)
    return CloudChange(
        config,
        _dump(doc),
        CloudPromotions(promotions=[*history.promotions, record]),
        f"cloud: prod takes {flow}'s " + " and ".join(_what(fse_differs, replaced)),
        adds_record=True,
    )


def plan_rollback(config: Path) -> CloudChange | None:
    """The cloud config as it was before its last promotion; None when there is none to undo."""
    history = load_history(config)
    if not history.promotions:
        return None
    *earlier, last = history.promotions
    doc = _read(config)
    flows = doc.get("flows")
    if not isinstance(flows, dict) or not all(isinstance(flows.get(f), dict) for f in (last.flow, PROD_FLOW)):
        raise PromotionError(
            f"flows.{last.flow} or flows.{PROD_FLOW} is no longer in {config}: cannot roll back"
        )
    prod, candidate = flows[PROD_FLOW], flows[last.flow]
    recognition = _section(doc)
    edited = [f"flows.{PROD_FLOW}.fse"] if _plain(prod.get("fse")) != last.wrote_fse else []
    edited += [
        f"recognition.{key}"
        for key, value in last.wrote_recognition.items()
        if _plain(recognition.get(key)) != value
    ]
    if last.flow_recognition is not None and candidate.get("recognition") is not None:
        edited.append(f"flows.{last.flow}.recognition")
    if edited:
        raise PromotionError(
            f"{', '.join(edited)} changed in {config} since {last.flow}'s promotion: a rollback would undo "
            f"that too; put back by hand what {history_file(config)} records"
        )
    _set(prod, "fse", last.prod_fse)
    for key, value in last.recognition.items():
        _set(recognition, key, value)
    _set(candidate, "recognition", last.flow_recognition)
    _check(doc, config)
    return CloudChange(
        config,
        _dump(doc),
        CloudPromotions(promotions=earlier),
        f"cloud: prod back on its settings from before {last.flow}'s promotion, "
        f"{last.flow} has its own again",
        adds_record=False,
    )


def _what(fse: bool, recognition: dict[str, Any]) -> list[str]:
    parts = ["estimator settings"] if fse else []
    return parts + ([f"recognition ({', '.join(recognition)})"] if recognition else [])


def _section(doc: Any) -> Any:
    """The `recognition` section, made an empty one where the file has none or a null; an empty
    one is dropped again when the file is written."""
    if not isinstance(doc.get("recognition"), dict):
        doc["recognition"] = CommentedMap()
    return doc["recognition"]


def _set(mapping: Any, key: str, value: Any) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def _plain(value: Any) -> Any:
    """A round-trip node as plain data, for the history file and comparisons."""
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
    if doc.get("recognition") == {}:
        del doc["recognition"]
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def _check(doc: Any, config: Path) -> CloudConfig:
    """The edited config as the services will read it with this shell's environment; never invalid."""
    try:
        return settings_from(CloudConfig, _plain(doc), str(config))
    except ConfigError as exc:
        raise PromotionError(f"the edited {config} would not be valid: {exc}") from exc
