"""Cloud configuration: the example loads, a typo fails at start naming the key, env overrides."""

from __future__ import annotations

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
