"""Cloud configuration: the example loads, a typo fails at start naming the key, env overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cloud.config import load_cloud_config
from shared.errors import ConfigError
from tests.conftest import REPO


def test_example_loads_and_the_environment_overrides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPOTWATCH_CLOUD_DATABASE_URL", "postgresql+psycopg://depot@db/depotwatch")
    config = load_cloud_config(REPO / "examples" / "cloud.yaml")
    assert config.database_url == "postgresql+psycopg://depot@db/depotwatch"
    assert config.api.port == 8000


def test_a_typo_fails_at_start_with_its_key(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "examples" / "cloud.yaml").read_text())
    data["api"]["prot"] = 8001
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_cloud_config(path)
    assert [issue.key for issue in info.value.issues] == ["api.prot"]
    path.write_text("- a list")
    with pytest.raises(ConfigError, match="mapping of settings"):
        load_cloud_config(path)


def test_a_flow_takes_prods_recognition_under_its_own_keys(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "examples" / "cloud.yaml").read_text())
    data["recognition"] = {"series_threshold": 0.7, "plate_model_dir": "models/plate/2.0.0"}
    data["flows"]["dev"] = {"recognition": {"series_model_dir": "models/loco_model/1.1.0"}}
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_cloud_config(path)
    dev, prod = config.recognition_models("dev"), config.recognition_models("prod")
    assert (dev.series_model_dir, dev.plate_model_dir, dev.series_threshold) == (
        Path("models/loco_model/1.1.0"),
        Path("models/plate/2.0.0"),
        0.7,
    )
    assert (
        prod.series_model_dir
        == Path("ir_models/loco_model/1.0.0")
        == config.recognition_models("replay").series_model_dir
    )

    data["flows"]["dev"]["recognition"]["series_threshold"] = 1.5
    data["flows"]["prod"] = {"recognition": {"series_threshold": 0.7}}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_cloud_config(path)
    assert [issue.key for issue in info.value.issues] == ["flows.dev.recognition.series_threshold"]
    del data["flows"]["dev"]["recognition"]["series_threshold"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(
        ConfigError, match=re.escape("flows.prod.recognition: prod's models are the `recognition`")
    ):
        load_cloud_config(path)


def test_a_flows_estimator_settings_are_checked_at_start(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "examples" / "cloud.yaml").read_text())
    data["flows"]["dev"] = {"fse": {"max_age_s": 15, "settle_s": 20}}
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_cloud_config(path)
    assert (config.flows["dev"].fse.max_age_s, config.flows["prod"].fse.max_age_s) == (15, 25)
    # Below the edge's 10 s re-confirmation a still camera's view would flap.
    data["flows"]["dev"]["fse"] = {"max_age_s": 5, "bridge": 1.0}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_cloud_config(path)
    assert sorted(issue.key for issue in info.value.issues) == [
        "flows.dev.fse.bridge",
        "flows.dev.fse.max_age_s",
    ]


def test_a_missing_tls_file_fails_at_start_naming_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "cloud.key"
    monkeypatch.setenv("DEPOTWATCH_CLOUD_BROKER__CERT_FILE", str(tmp_path / "cloud.crt"))
    monkeypatch.setenv("DEPOTWATCH_CLOUD_BROKER__KEY_FILE", str(key))
    (tmp_path / "cloud.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ConfigError) as info:
        load_cloud_config(REPO / "examples" / "cloud.yaml")
    assert [(issue.key, issue.message) for issue in info.value.issues] == [
        ("broker.key_file", f"{key} does not exist")
    ]


def test_the_workbenchs_lpe_folder_fails_at_start_when_missing_or_its_envelope_malformed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_cloud_config(REPO / "examples" / "cloud.yaml").calibration.lpe_model_dir == Path(
        "ir_models/lpe/2.0.0"
    )
    monkeypatch.setenv("DEPOTWATCH_CLOUD_CALIBRATION__LPE_MODEL_DIR", str(tmp_path / "lpe"))
    with pytest.raises(ConfigError) as info:
        load_cloud_config(REPO / "examples" / "cloud.yaml")
    assert [(issue.key, issue.message) for issue in info.value.issues] == [
        ("calibration.lpe_model_dir", f"{tmp_path / 'lpe'} is not a folder")
    ]
    (tmp_path / "lpe").mkdir()
    (tmp_path / "lpe" / "envelope.yaml").write_text("measured_on: x\nheight_m: {low: 9, high: 8}\n")
    with pytest.raises(ConfigError) as info:
        load_cloud_config(REPO / "examples" / "cloud.yaml")
    [issue] = info.value.issues
    assert issue.key == "calibration.lpe_model_dir" and "height_m" in issue.message, issue


def test_sparkplug_is_refused_beside_replicas_naming_the_key(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "examples" / "cloud.yaml").read_text())
    data["sparkplug"] = {"enabled": True}
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_cloud_config(path).sparkplug.enabled
    data["ingest"] = {"shared_group": "cloud"}
    data["broker"] = {"protocol": "5"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=re.escape("sparkplug.enabled: not with ingest.shared_group")):
        load_cloud_config(path)
