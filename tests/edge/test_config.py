"""Edge configuration: validated at start, each error at its key, the environment overriding YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from depotwatch.cli import app
from edge.config import load_edge_config
from shared.errors import ConfigError
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "edge.yaml"


def _write(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["layout"] = str(REPO / "examples" / "facility.yaml")
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_example_config_loads(tmp_path: Path) -> None:
    config, facility = load_edge_config(_write(tmp_path))
    assert config.node_id == "edge-bay1"
    assert set(facility.cameras_of_node(config.node_id)) == {"T1-C1", "T1-C2", "T1-C3", "T1-C4"}


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPOTWATCH_EDGE_BROKER__URL", "mqtts://broker.depot:8883")
    monkeypatch.setenv("DEPOTWATCH_EDGE_SPOOL__MAX_MEGABYTES", "12")
    config, _ = load_edge_config(_write(tmp_path))
    assert config.broker.port == 8883 and config.broker.tls
    assert config.spool.max_megabytes == 12


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        (
            {"capture__stall_afer_s": 3},
            "capture.stall_afer_s",
            "unknown setting; did you mean 'stall_after_s'?",
        ),
        ({"brokr": {"url": "mqtt://x:1"}}, "brokr", "unknown setting; did you mean 'broker'?"),
        (
            {"capture__cameras": {"T1-C1": {"sampel_fps": 1}}},
            "capture.cameras.T1-C1.sampel_fps",
            "did you mean 'sample_fps'?",
        ),
        ({"zzz": 1}, "zzz", "unknown setting"),
        ({"node_id": "edge-bay9"}, "node_id", "not a node"),
        ({"broker__url": "http://x"}, "broker.url", "mqtt://host:port"),
        ({"broker__password": "changeme"}, "broker", "placeholder"),
        ({"lpe__precision": "int4"}, "lpe.precision", "'fp32' or 'int8'"),
        ({"capture__cameras": {"T2-C1": {"sample_fps": 1}}}, "capture.cameras.T2-C1", "not a camera of node"),
        ({"capture__offline_after_s": 1}, "", "offline_after_s must not be shorter"),
        ({"lpe__model_dir": "/nowhere/lpe/9.9.9"}, "lpe.model_dir", "lpe_int8.xml does not exist"),
    ],
)
def test_bad_settings_fail_at_start_naming_the_key(
    tmp_path: Path, changes: dict[str, object], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_edge_config(_write(tmp_path, **changes))
    assert any(issue.key == key and message in issue.message for issue in info.value.issues), str(info.value)


def test_an_invalid_environment_variable_is_named_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPOTWATCH_EDGE_BROKER__KEEPALIVE_S", "fifteen")
    with pytest.raises(ConfigError) as info:
        load_edge_config(_write(tmp_path))
    assert info.value.source == "the environment"
    (issue,) = info.value.issues
    assert issue.key == "DEPOTWATCH_EDGE_BROKER__KEEPALIVE_S (environment variable, sets broker.keepalive_s)"
    assert "valid integer" in issue.message
    assert str(info.value).startswith("the environment: DEPOTWATCH_EDGE_BROKER__KEEPALIVE_S")


def test_a_misspelt_environment_variable_is_an_error_with_the_intended_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPOTWATCH_EDGE_BROKR__PASSWORD", "s3cret")
    with pytest.raises(ConfigError) as info:
        load_edge_config(_write(tmp_path))
    (issue,) = info.value.issues
    assert issue.key == "DEPOTWATCH_EDGE_BROKR__PASSWORD (environment variable)"
    assert issue.message == "names no setting; did you mean 'DEPOTWATCH_EDGE_BROKER__PASSWORD'?"


def test_the_check_command_validates_without_starting_anything(tmp_path: Path) -> None:
    good = CliRunner().invoke(app, ["edge", "check", str(_write(tmp_path))])
    assert good.exit_code == 0 and "edge-bay1: 4 cameras (T1-C1, T1-C2, T1-C3, T1-C4)" in good.output
    bad = CliRunner().invoke(app, ["edge", "check", str(_write(tmp_path, node_id="edge-bay9"))])
    assert bad.exit_code == 2 and "node_id" in bad.output and "edge-bay9" in bad.output


def test_a_missing_tls_file_fails_at_start_naming_its_key(tmp_path: Path) -> None:
    missing = tmp_path / "ca.crt"
    path = _write(tmp_path, broker__url="mqtts://broker.depot:8883", broker__ca_file=str(missing))
    with pytest.raises(ConfigError) as failure:
        load_edge_config(path)
    assert f"broker.ca_file: {missing} does not exist" in str(failure.value)
    missing.write_text("-----BEGIN CERTIFICATE-----\n")  # present: loading no longer refuses it
    load_edge_config(path)
