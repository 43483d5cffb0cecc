"""Promotion of a flow over both places it is declared: its LPE in the edge flows file and its
estimator settings and recognition models in the cloud config (edited in place, comments kept), and
rollback of the last promotion wherever it changed something."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cloud.config import load_cloud_config
from depotwatch.cli import app
from depotwatch.promotion.cloud_config import history_file
from depotwatch.promotion.edge_flows import PromotionError, load_flows
from depotwatch.promotion.promote import promote, rollback
from tests.conftest import EXAMPLE_LAYOUT, REPO

MODELS = REPO / "ir_models"
FLOWS = {
    "edge_node_lpe_version": "1.0.0",
    "edge_node_lpe_precision": "int8",
    "edge_node_shadow_flows": {"dev": {"lpe_version": "1.0.0", "lpe_precision": "fp32", "threads": 1}},
    "edge_node_flow_history": [],
}
CLOUD = f"""\
# The depot's cloud service.
layout: {EXAMPLE_LAYOUT}
recognition:
  workers: 2  # two thumbnails at once
  series_threshold: 0.6
flows:
  prod: {{}}
  dev:
    # the candidate: a longer view memory and the retrained series classifier
    fse:
      max_age_s: 40
    recognition:
      series_model_dir: ir_models/loco_model/2.0.0
      series_threshold: 0.75
  replay:
    clock: data
    fse:
      bridge_m: 1.2  # gangways up to 1.2 m
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    flows = tmp_path / "flows.yml"
    flows.write_text(yaml.safe_dump(FLOWS))
    cloud = tmp_path / "cloud.yaml"
    cloud.write_text(CLOUD)
    cloud.chmod(0o600)  # it may hold secrets: a promotion keeps its mode
    return flows, cloud


def test_promoting_dev_makes_its_model_settings_and_recognition_prods_and_rollback_undoes_it(
    files: tuple[Path, Path],
) -> None:
    flows, cloud = files
    before = load_cloud_config(cloud)
    outcome = promote("dev", flows, cloud, MODELS)

    assert outcome.edge is not None and outcome.edge.edge_node_lpe_precision == "fp32"
    assert load_flows(flows).edge_node_shadow_flows == {}
    after = load_cloud_config(cloud)
    assert after.flows["prod"].fse == before.flows["dev"].fse
    assert after.flows["prod"].fse.max_age_s == 40
    assert after.recognition_models("prod") == before.recognition_models("dev")
    assert after.recognition.series_model_dir == Path("ir_models/loco_model/2.0.0")
    assert after.recognition.workers == 2  # untouched keys stay
    assert after.flows["dev"].recognition is None  # dev keeps running, on what is prod's now
    assert after.flows["replay"] == before.flows["replay"]
    text = cloud.read_text()
    assert "# The depot's cloud service." in text and "# two thumbnails at once" in text
    assert "gangways up to 1.2 m" in text
    assert "&" not in text and "*" not in text  # prod's settings a copy, not an alias of dev's
    assert stat.S_IMODE(cloud.stat().st_mode) == 0o600
    assert outcome.cloud == (
        "cloud: prod takes dev's estimator settings and recognition (series_model_dir, series_threshold)"
    )

    back = rollback(flows, cloud)
    assert back.edge is not None and back.cloud
    assert load_cloud_config(cloud) == before
    assert load_flows(flows).model_dump(mode="json") == FLOWS
    assert yaml.safe_load(cloud.read_text()) == yaml.safe_load(CLOUD)
    assert yaml.safe_load(history_file(cloud).read_text()) == {"promotions": []}
    with pytest.raises(PromotionError, match="has a promotion to roll back"):
        rollback(flows, cloud)


def test_a_flow_only_in_the_cloud_is_promoted_there_and_rollback_undoes_the_last_promotion_only(
    files: tuple[Path, Path],
) -> None:
    flows, cloud = files
    promote("dev", flows, cloud, MODELS)
    after_dev = load_cloud_config(cloud)

    replay = promote("replay", flows, cloud, MODELS)  # an estimator change tried on recorded days
    assert replay.edge is None and replay.cloud == "cloud: prod takes replay's estimator settings"
    assert load_cloud_config(cloud).flows["prod"].fse.bridge_m == 1.2
    assert len(load_flows(flows).edge_node_flow_history) == 1  # the edge file was not touched

    first = rollback(flows, cloud)
    assert first.edge is None and first.cloud  # undoes replay's, not dev's edge promotion
    assert load_cloud_config(cloud) == after_dev
    assert load_flows(flows).edge_node_lpe_precision == "fp32"
    second = rollback(flows, cloud)
    assert second.edge is not None and second.cloud
    assert load_flows(flows).model_dump(mode="json") == FLOWS


def test_promotion_refuses_what_it_cannot_do_and_writes_nothing(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    flows, cloud = files
    with pytest.raises(
        PromotionError, match=r"'qa' is not a shadow flow .* \(shadow flows: dev\) and has no"
    ):
        promote("qa", flows, cloud, MODELS)
    with pytest.raises(PromotionError, match="prod cannot be promoted"):
        promote("prod", flows, cloud, MODELS)
    monkeypatch.setenv("DEPOTWATCH_CLOUD_RECOGNITION__SERIES_THRESHOLD", "0.5")
    with pytest.raises(PromotionError, match="the environment overrides"):
        promote("dev", flows, cloud, MODELS)
    assert cloud.read_text() == CLOUD
    assert yaml.safe_load(flows.read_text()) == FLOWS
    assert not history_file(cloud).exists()


def test_rollback_refuses_to_undo_an_edit_made_since_the_promotion(files: tuple[Path, Path]) -> None:
    flows, cloud = files
    promote("dev", flows, cloud, MODELS)
    rollback(flows, cloud)
    promote("dev", flows, cloud, MODELS)
    tuned = cloud.read_text().replace("max_age_s: 40", "max_age_s: 45")
    cloud.write_text(tuned)
    with pytest.raises(PromotionError, match=r"flows.prod.fse changed in .* since dev's promotion"):
        rollback(flows, cloud)
    assert cloud.read_text() == tuned
    assert load_flows(flows).edge_node_shadow_flows == {}  # neither side rolled back


def test_a_write_failing_between_the_two_files_leaves_a_promotion_that_rolls_back(
    files: tuple[Path, Path],
) -> None:
    flows, cloud = files
    (flows.parent / f".{flows.name}.tmp").mkdir()  # the edge file cannot be written
    with pytest.raises(PromotionError, match="cannot write"):
        promote("dev", flows, cloud, MODELS)
    assert load_cloud_config(cloud).flows["prod"].fse.max_age_s == 40  # the cloud side went through
    assert yaml.safe_load(flows.read_text()) == FLOWS
    (flows.parent / f".{flows.name}.tmp").rmdir()
    back = rollback(flows, cloud)
    assert back.edge is None and back.cloud is not None
    assert yaml.safe_load(cloud.read_text()) == yaml.safe_load(CLOUD)


def test_the_commands_promote_and_roll_back_both_sides_and_say_what_to_restart(
    files: tuple[Path, Path],
) -> None:
    flows, cloud = files
    runner = CliRunner()
    args = ["--flows-file", str(flows), "--cloud-config", str(cloud)]
    promoted = runner.invoke(app, ["flow", "promote", "dev", *args])
    assert promoted.exit_code == 0, promoted.output
    assert "edge: prod now runs LPE 1.0.0 fp32 (was 1.0.0 int8)" in promoted.output
    assert "cloud: prod takes dev's estimator settings" in promoted.output
    assert "up -d --force-recreate cloud recognition" in promoted.output
    assert f"ansible-playbook -i ansible/inventory.yml ansible/edge.yml -e @{flows}" in promoted.output
    back = runner.invoke(app, ["flow", "rollback", *args])
    assert back.exit_code == 0, back.output
    assert "edge: prod back on LPE 1.0.0 int8" in back.output
    assert "cloud: prod back on its settings from before dev's promotion" in back.output
    unknown = runner.invoke(app, ["flow", "promote", "qa", *args])
    assert unknown.exit_code == 2 and "nothing to promote" in " ".join(unknown.output.split())


def test_the_shipped_cloud_config_has_nothing_to_promote(tmp_path: Path) -> None:
    config = shutil.copy(REPO / "compose" / "cloud.yaml", tmp_path)
    flows = shutil.copy(REPO / "ansible" / "flows.yml", tmp_path)
    with pytest.raises(PromotionError, match="nothing to promote"):
        promote("dev", Path(flows), Path(config), MODELS)
