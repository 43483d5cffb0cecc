"""How benchmarks report: a table on the console and the raw figures as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=160)


def report(title: str, rows: list[tuple[str, str, str]], results: Path, figures: dict[str, Any]) -> None:
    """Print (measure, value, target) rows and write `figures` to `results`."""
    table = Table(title=title)
    for column in ("measure", "value", "target"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(figures, indent=2))
    console.print(f"results: {results}")
