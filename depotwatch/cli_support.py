"""What every `depotwatch` command module shares: the console and the error-to-exit-status rule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from shared.errors import DepotwatchError

console = Console()
# Errors go to stderr, so what a command prints (a new key, a table) stays clean to pipe.
errors = Console(stderr=True)


@contextmanager
def exit_on_error() -> Iterator[None]:
    """A DepotwatchError ends the command with its message and exit status 2, not a traceback."""
    try:
        yield
    except DepotwatchError as exc:
        # One line stays one line (rich would wrap it at the terminal width), and "[Errno 2]" in a
        # message is text, not markup.
        errors.print(str(exc), style="red", soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(2) from exc
