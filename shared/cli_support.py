"""What every `depotwatch` command module shares: the console and the error-to-exit-status rule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from shared.errors import DepotwatchError

console = Console()


@contextmanager
def exit_on_error() -> Iterator[None]:
    """A DepotwatchError ends the command with its message and exit status 2, not a traceback."""
    try:
        yield
    except DepotwatchError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
