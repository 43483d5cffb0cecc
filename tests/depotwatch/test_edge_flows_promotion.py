"""Promotion of a shadow flow's model to prod, and its rollback, in the flows file the rollout reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from depotwatch.cli import app
from depotwatch.promotion.edge_flows import PromotionError, load_flows, promote, rollback
from tests.conftest import REPO

START = {
    "edge_node_lpe_version": "1.0.0",
    "edge_node_lpe_precision": "int8",
    "edge_node_shadow_flows": {"dev": {"lpe_version": "1.0.0", "lpe_precision": "fp32", "threads": 1}},
    "edge_node_flow_history": [],
}
MODELS = REPO / "ir_models"


@pytest.fixture
def flows_file(tmp_path: Path) -> Path:
    path = tmp_path / "flows.yml"
    path.write_text(yaml.safe_dump(START))
    return path


def test_promotion_makes_the_shadow_model_prod_and_rollback_restores_the_state(flows_file: Path) -> None:
    promoted = promote("dev", flows_file, MODELS)
    assert (promoted.edge_node_lpe_version, promoted.edge_node_lpe_precision) == ("1.0.0", "fp32")
    assert promoted.edge_node_shadow_flows == {}
    assert load_flows(flows_file) == promoted
    restored = rollback(flows_file)
    assert restored.model_dump(mode="json") == START
    with pytest.raises(PromotionError, match="no earlier state"):
        rollback(flows_file)


def test_promotion_refuses_what_it_cannot_roll_out(flows_file: Path, tmp_path: Path) -> None:
    with pytest.raises(PromotionError, match=r"'qa' is not a shadow flow .* \(shadow flows: dev\)"):
        promote("qa", flows_file, MODELS)
    with pytest.raises(PromotionError, match=r"lpe_fp32\.xml does not exist"):
        promote("dev", flows_file, tmp_path / "no-models")
    assert yaml.safe_load(flows_file.read_text()) == START  # nothing written


def test_the_commands_promote_roll_back_and_say_how_to_roll_out(flows_file: Path) -> None:
    runner = CliRunner()
    promoted = runner.invoke(app, ["flow", "promote", "dev", "--flows-file", str(flows_file)])
    assert promoted.exit_code == 0, promoted.output
    assert "prod now runs LPE 1.0.0 fp32 (was 1.0.0 int8)" in promoted.output
    assert f"ansible-playbook -i ansible/inventory.yml ansible/edge.yml -e @{flows_file}" in promoted.output
    back = runner.invoke(app, ["flow", "rollback", "--flows-file", str(flows_file)])
    assert back.exit_code == 0 and "prod back on LPE 1.0.0 int8" in back.output
    unknown = runner.invoke(app, ["flow", "promote", "qa", "--flows-file", str(flows_file)])
    assert unknown.exit_code == 2 and "not a shadow flow" in unknown.output


def test_the_shipped_flows_file_is_valid() -> None:
    flows = load_flows(REPO / "ansible" / "flows.yml")
    assert (
        MODELS / "lpe" / flows.edge_node_lpe_version / f"lpe_{flows.edge_node_lpe_precision}.xml"
    ).is_file()
