"""How benchmarks report: a table on the console and the raw figures as JSON.

A measurement that did not happen (no frame arrived, nothing was acknowledged) is a `NotMeasured`
value, shown as such and never as a figure; a report holding one ends the run with status 1
(`FAILED`), after the table and the JSON, so what did get measured is kept.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(width=160)
FAILED = 1  # exit status: the benchmark ran, and some measurement did not happen


@dataclass(frozen=True)
class NotMeasured:
    """The value of a row whose measurement did not happen, with why."""

    reason: str

    def __str__(self) -> str:
        return f"not measured: {self.reason}"


Row = tuple[str, str | NotMeasured, str]


def rate(value: float, fmt: str, missing: str) -> str | NotMeasured:
    """A rate or count formatted with `fmt`, or `NotMeasured(missing)` when it is not a positive
    number: for a figure where 0 means that nothing was seen, not a measurement of zero."""
    return fmt.format(value) if math.isfinite(value) and value > 0 else NotMeasured(missing)


def report(title: str, rows: list[Row], results: Path, figures: dict[str, Any]) -> None:
    """Print (measure, value, target) rows and write `figures` to `results`; exit with `FAILED` if
    a row was not measured."""
    table = Table(title=title)
    for column in ("measure", "value", "target"):
        table.add_column(column)
    failed = {label: value.reason for label, value, _ in rows if isinstance(value, NotMeasured)}
    for label, value, target in rows:
        shown = f"[bold red]{escape(str(value))}[/]" if isinstance(value, NotMeasured) else escape(value)
        table.add_row(escape(label), shown, escape(target))
    console.print(table)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(figures | ({"not_measured": failed} if failed else {}), indent=2))
    console.print(f"results: {results}")
    if failed:
        console.print(f"[bold red]{len(failed)} measurement(s) did not happen[/]")
        raise SystemExit(FAILED)
