"""The import layers (pyproject's [tool.importlinter], run by `make lint`): kept by the tree as it is,
and broken, naming the import, by one import against them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("shared", "edge", "cloud", "sim", "depotwatch", "training", "bench")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, before the editable install's own folders.
    return subprocess.run(
        [str(LINT_IMPORTS), str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_tree_keeps_its_layers() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "reported"),
    [
        ("shared/layout.py", "import cloud.fse", "shared is not allowed to import cloud"),
        ("edge/spool.py", "from sim import world", "edge is not allowed to import sim"),
        ("cloud/fse.py", "import edge.spool", "cloud is not allowed to import edge"),
        ("sim/world.py", "import depotwatch.demo", "sim is not allowed to import depotwatch"),
        ("training/lpe/data.py", "import bench.report", "training is not allowed to import bench"),
    ],
)
def test_an_import_against_the_layers_breaks_them(
    tmp_path: Path, module: str, line: str, reported: str
) -> None:
    tree = _copy(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # against the layers\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert reported in result.stdout, result.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"- {importer} -> {line.split()[1]}" in result.stdout, result.stdout
