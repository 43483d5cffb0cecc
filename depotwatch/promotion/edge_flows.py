"""Promoting a shadow flow's model to prod, and rolling that back: edits the flows file the edge
rollout reads (ansible/flows.yml: the prod LPE and the shadow flows), keeping every earlier state in
it, so a rollback restores the one before exactly. The change reaches the boxes through the same
playbook as any model update."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field

from shared.errors import DepotwatchError
from shared.ids import Identifier
from shared.strict import StrictModel
from shared.yaml_config import load_model, write_yaml_atomically

FLOWS_FILE = Path("ansible/flows.yml")
MODELS = Path("ir_models")


class PromotionError(DepotwatchError):
    """The promotion or rollback cannot be done as asked."""


class ShadowModel(StrictModel):
    """The model a shadow flow runs."""

    lpe_version: str = Field(description="Folder under ir_models/lpe/.")
    lpe_precision: Literal["fp32", "int8"] = "int8"
    threads: int = Field(1, ge=1, le=64, description="CPU threads the shadow model may use.")


class FlowsState(StrictModel):
    """Which LPE each flow runs at the edge."""

    edge_node_lpe_version: str = Field(description="The prod flow's LPE (folder under ir_models/lpe/).")
    edge_node_lpe_precision: Literal["fp32", "int8"] = "int8"
    edge_node_shadow_flows: dict[Identifier, ShadowModel] = Field(default_factory=dict)


class EarlierState(FlowsState):
    """A state a promotion replaced, with the promotion that replaced it."""

    promoted: Identifier | None = Field(None, description="The flow promoted over this state.")
    at: AwareDatetime | None = Field(
        None, description="When (the cloud config's record of the same promotion has the same instant)."
    )


class FlowsFile(FlowsState):
    """The flows file: the state now and every earlier one (newest last)."""

    edge_node_flow_history: list[EarlierState] = Field(default_factory=list)

    def state(self) -> FlowsState:
        """The state now, without the history."""
        return FlowsState.model_validate(self.model_dump(exclude={"edge_node_flow_history"}))


def load_flows(path: Path = FLOWS_FILE) -> FlowsFile:
    """Read and validate the flows file."""
    return load_model(FlowsFile, path)


def plan_promotion(
    flow: str, path: Path = FLOWS_FILE, models: Path = MODELS, at: datetime | None = None
) -> FlowsFile:
    """The flows file with `flow`'s model made the prod one (the flow stops running in shadow)."""
    flows = load_flows(path)
    candidate = flows.edge_node_shadow_flows.get(flow)
    if candidate is None:
        shadows = ", ".join(sorted(flows.edge_node_shadow_flows)) or "none"
        raise PromotionError(f"{flow!r} is not a shadow flow in {path} (shadow flows: {shadows})")
    xml = models / "lpe" / candidate.lpe_version / f"lpe_{candidate.lpe_precision}.xml"
    if not xml.is_file():
        raise PromotionError(f"{flow}'s model {xml} does not exist: nothing to roll out")
    return FlowsFile(
        edge_node_lpe_version=candidate.lpe_version,
        edge_node_lpe_precision=candidate.lpe_precision,
        edge_node_shadow_flows={k: v for k, v in flows.edge_node_shadow_flows.items() if k != flow},
        edge_node_flow_history=[
            *flows.edge_node_flow_history,
            EarlierState(**flows.state().model_dump(), promoted=flow, at=at or datetime.now(UTC)),
        ],
    )


def promote(flow: str, path: Path = FLOWS_FILE, models: Path = MODELS) -> FlowsFile:
    """Make `flow`'s model the prod one; returns the new file."""
    promoted = plan_promotion(flow, path, models)
    write_flows(path, promoted)
    return promoted


def plan_rollback(path: Path = FLOWS_FILE) -> FlowsFile:
    """The flows file as it was before the last promotion."""
    flows = load_flows(path)
    if not flows.edge_node_flow_history:
        raise PromotionError(f"{path} has no earlier state to roll back to")
    *earlier, last = flows.edge_node_flow_history
    return FlowsFile(**last.model_dump(exclude={"promoted", "at"}), edge_node_flow_history=earlier)


def rollback(path: Path = FLOWS_FILE) -> FlowsFile:
    """Restore the state before the last promotion; returns the new file."""
    restored = plan_rollback(path)
    write_flows(path, restored)
    return restored


def write_flows(path: Path, flows: FlowsFile) -> None:
    """Write the flows file atomically."""
    write_yaml_atomically(path, flows.model_dump(mode="json"))
