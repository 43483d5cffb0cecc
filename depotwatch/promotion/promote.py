"""A flow's promotion as one step over both places a flow is declared: its LPE in the edge flows
file (when it runs in shadow at the edge) and its estimator settings and recognition models in the
cloud config (when it has its own there). Both records of one promotion carry the same instant, so a
rollback undoes the last promotion wherever it made changes, and only there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from depotwatch.promotion import cloud_config as cloud_side
from depotwatch.promotion import edge_flows as edge_side


@dataclass(frozen=True)
class Outcome:
    """What a promotion or rollback changed: the edge flows file (to roll out) and/or the cloud config
    (for the cloud services to restart on), with a line saying what."""

    edge: edge_side.FlowsFile | None = None
    cloud: str | None = None


def promote(flow: str, flows_file: Path, cloud_config: Path, models: Path) -> Outcome:
    """Make `flow`'s model, settings and recognition prod's wherever it has its own."""
    at = datetime.now(UTC)
    shadows = edge_side.load_flows(flows_file).edge_node_shadow_flows
    cloud = cloud_side.plan_promotion(flow, cloud_config, at)
    if flow not in shadows and cloud is None:
        listed = ", ".join(sorted(shadows)) or "none"
        raise edge_side.PromotionError(
            f"{flow!r} is not a shadow flow in {flows_file} (shadow flows: {listed}) and has no "
            f"estimator settings or recognition models of its own in {cloud_config}: nothing to promote"
        )
    edge = edge_side.plan_promotion(flow, flows_file, models, at) if flow in shadows else None
    # The cloud first: a failure between the two leaves a cloud-only promotion, which a rollback
    # undoes on its own (the edge file has no record of that instant).
    _write(cloud, edge, flows_file)
    return Outcome(edge, cloud.summary if cloud else None)


def rollback(flows_file: Path, cloud_config: Path) -> Outcome:
    """Undo the last promotion, in the files it changed."""
    edge_history = edge_side.load_flows(flows_file).edge_node_flow_history
    cloud_history = cloud_side.load_history(cloud_config).promotions
    if not edge_history and not cloud_history:
        raise edge_side.PromotionError(
            f"neither {flows_file} nor {cloud_config} has a promotion to roll back"
        )
    # An edge state recorded before promotions were stamped is older than any stamped one.
    edge_at = (edge_history[-1].at or datetime.min.replace(tzinfo=UTC)) if edge_history else None
    cloud_at = cloud_history[-1].at if cloud_history else None
    newest = max(stamp for stamp in (edge_at, cloud_at) if stamp is not None)
    cloud = cloud_side.plan_rollback(cloud_config) if cloud_at == newest else None
    edge = edge_side.plan_rollback(flows_file) if edge_at == newest else None
    _write(cloud, edge, flows_file)
    return Outcome(edge, cloud.summary if cloud else None)


def _write(cloud: cloud_side.CloudChange | None, edge: edge_side.FlowsFile | None, flows_file: Path) -> None:
    try:
        if cloud is not None:
            cloud.apply()
        if edge is not None:
            edge_side.write_flows(flows_file, edge)
    except OSError as exc:
        raise edge_side.PromotionError(f"cannot write {exc.filename}: {exc.strerror}") from exc
