"""The `depotwatch` command's help reads well, and no option defaults to a file that is not there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer.main
from typer.testing import CliRunner

from depotwatch.cli import app
from tests.conftest import REPO

ROOT = typer.main.get_command(app)


def _commands(
    group: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(ROOT))


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "depotwatch")
def test_help_shows_no_value_for_a_flag(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "BOOLEAN" not in result.output, result.output


def test_no_path_option_defaults_to_a_file_missing_from_the_repository() -> None:
    missing = []
    for path, command in COMMANDS:
        for param in command.params:
            default = param.default
            if (
                isinstance(default, Path)
                and default.suffix in {".yaml", ".yml"}
                and not (REPO / default).exists()
            ):
                missing.append(f"depotwatch {' '.join(path)} {param.opts[0]}: {default}")
    assert not missing, missing
