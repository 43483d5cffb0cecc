"""The edge config is read (and checked) by tools that never infer: it must not load OpenVINO."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_importing_the_edge_config_leaves_openvino_unloaded() -> None:
    code = "import sys, edge.config; print(sorted(m for m in sys.modules if m.split('.')[0] == 'openvino'))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
