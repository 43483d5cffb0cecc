"""Mutation testing of the core pure modules: how many small bugs put into each one its fast tests catch.

    python -m bench.mutate                  # every module (make mutate)
    python -m bench.mutate spool codec      # some of them (make mutate MODULE=spool)
    python -m bench.mutate --list           # the modules, their files and their tests

mutmut (pinned in the dev extra) changes one operator, constant or call at a time in a module's files
and runs the tests that reach the changed function: a mutant that no test fails "survived", and is
either a missing test or an equivalent change (docs/testing.md lists those with why). Each module has
its own fast test selection (its unit tests: no broker or database; auth adds its HTTP tests)
and its own work folder, mutants/<module>/, made afresh each run, so that no result is a stale one.
Prints a table per module and every survivor as file:line with the change; writes
bench/results/mutate.json. Not in CI: a run of all modules takes 6 to 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from rich.console import Console
from rich.table import Table

from bench import prerequisites

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "mutants"
RESULTS = REPO / "bench" / "results" / "mutate.json"
# The equivalent mutants, each with why: a list under this heading, one `- `file` `mutated line`: why`
# a line; they are not counted, and an entry that no longer matches a survivor is reported.
DOC = REPO / "docs" / "testing.md"
EQUIVALENT_HEADING = "## Equivalent mutants"
EQUIVALENT_ENTRY = re.compile(r"^- `(?P<file>[\w/]+\.py)` `(?P<mutated>[^`]+)`: (?P<why>.+)$", re.M)
SQL = re.compile(r"[\"'](SELECT|INSERT|DELETE|UPDATE|PRAGMA|WHERE|ON CONFLICT)\b", re.I)
# Below this share of killed mutants a module fails the run (the target).
TARGET = 0.90
# The packages mutmut may see (the tests import all of them; it mutates only a module's files).
PACKAGES = ("shared", "edge", "cloud", "sim", "depotwatch", "bench", "training")
# What the tests of every module read besides the packages and tests/ (the example layout, the docs).
ALSO_COPY = ("examples", "docs")
# Exit codes mutmut records per mutant, grouped as the table shows them (any other: not caught).
KILLED, TIMEOUT, SURVIVED, NO_TESTS = {1, 3, 37}, {24, -24, 152, 255, 36}, {0}, {5, 33}
console = Console(width=200)


@dataclass(frozen=True)
class Module:
    """A module under mutation: its files and the pytest arguments that select its fast tests."""

    files: tuple[str, ...]
    tests: tuple[str, ...]


MODULES = {
    "codec": Module(("shared/codec.py",), ("tests/shared/test_contract.py", "-k", "not a_real_broker")),
    "calibration": Module(("shared/calibration.py",), ("tests/shared/test_calibration.py",)),
    "spool": Module(("edge/spool.py",), ("tests/edge/test_spool.py",)),
    "decode": Module(("edge/lpe/decode.py",), ("tests/edge/test_decode.py",)),
    # The simulated days take 20 s each: the scenario tests pin the same logic in well under a second.
    "fse": Module(
        ("cloud/fse.py", "cloud/fse_match.py"),
        ("tests/cloud/test_fse.py", "tests/cloud/test_fse_units.py", "-k", "not simulated_day"),
    ),
    "plates": Module(
        ("cloud/recognition/plate_rules.py", "cloud/recognition/voting.py"),
        ("tests/cloud/test_plate_rules_and_voting.py", "tests/cloud/test_number_formats.py"),
    ),
    "numbers": Module(
        ("cloud/recognition/check_digits.py", "cloud/recognition/line_assembly.py"),
        ("tests/cloud/test_number_formats.py",),
    ),
    # KeyRoles' unit tests on SQLite, and the app over HTTP on the embedded broker and SQLite (the
    # routes' roles, revocation): a minute or two.
    "auth": Module(("cloud/auth.py",), ("tests/cloud/test_key_roles.py", "tests/cloud/test_auth.py")),
}


def pin() -> str:
    """The mutmut version pyproject's dev extra pins (its config and files change between versions)."""
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    return str(next(spec.partition("==")[2] for spec in dev if spec.startswith("mutmut==")))


def _toml(value: object) -> str:
    # JSON's strings, numbers, booleans and lists are TOML's too: enough for the config written here.
    return json.dumps(value)


def prepare(name: str, module: Module) -> Path:
    """A fresh work folder for one module: the project's folders linked in, and a pyproject.toml with
    the project's pytest settings and this module's mutmut settings (mutmut reads them from there)."""
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for folder in (*PACKAGES, "tests", *ALSO_COPY):
        (work / folder).symlink_to(REPO / folder, target_is_directory=True)
    pytest_ini = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    mutmut = {
        "source_paths": list(PACKAGES),
        "only_mutate": list(module.files),
        "also_copy": list(ALSO_COPY),
        "pytest_add_cli_args_test_selection": list(module.tests),
        # Same examples for every mutant, and no cache or test-timeout plugin racing mutmut's own limit.
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-p", "no:timeout", "--hypothesis-seed=0"],
        "use_git_change_detection": False,
    }
    lines = ["[tool.mutmut]", *(f"{k} = {_toml(v)}" for k, v in mutmut.items()), ""]
    lines += ["[tool.pytest.ini_options]", *(f"{k} = {_toml(v)}" for k, v in pytest_ini.items())]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return work


class Survivor(NamedTuple):
    """A mutant no test caught: where, what it changed, and mutmut's name for it (`mutmut show NAME`
    in mutants/<module>/ prints its diff)."""

    file: str
    line: int
    original: str
    mutated: str
    key: str
    code: int | None  # mutmut's exit code for it: 0 survived, 5 or 33 no test runs the function

    def __str__(self) -> str:
        why = (
            ""
            if self.code in SURVIVED
            else ", no test reaches it"
            if self.code in NO_TESTS
            else f", {self.code}"
        )
        return f"{self.file}:{self.line}  {self.original} → {self.mutated}  ({self.key}{why})"


def equivalents(doc: Path = DOC) -> dict[tuple[str, str], str]:
    """The mutants docs/testing.md lists as equivalent, by file and mutated line, with why."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    section = text.partition(EQUIVALENT_HEADING)[2].partition("\n## ")[0]
    return {(m["file"], m["mutated"]): m["why"] for m in EQUIVALENT_ENTRY.finditer(section)}


def is_equivalent(survivor: Survivor, listed: dict[tuple[str, str], str]) -> bool:
    """Listed in docs/testing.md, or only the letter case of an SQL statement changed (SQLite reads
    keywords, names and pragma values in any case)."""
    if (survivor.file, survivor.mutated) in listed:
        return True
    return survivor.original.lower() == survivor.mutated.lower() and bool(SQL.search(survivor.original))


@dataclass
class Outcome:
    """One module's run."""

    mutants: int
    killed: int
    survived: int
    timeouts: int
    untested: int
    seconds: float
    survivors: list[Survivor]
    equivalent: list[Survivor]

    @property
    def kill_rate(self) -> float:
        """Share of the mutants that are not equivalent some test caught (a timeout counts: the run
        noticed the mutant hang)."""
        counted = self.mutants - len(self.equivalent)
        return (self.killed + self.timeouts) / counted if counted else 0.0


def run(name: str, jobs: int, listed: dict[tuple[str, str], str]) -> Outcome:
    """Mutate one module and run its tests; raises RuntimeError when mutmut itself fails."""
    module = MODULES[name]
    work = prepare(name, module)
    log = work / "mutmut.log"
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "mutmut"), "run", "--max-children", str(jobs)],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"NO_COLOR": "1"},
        )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").strip().splitlines()[-15:]
        raise RuntimeError(f"mutmut failed on {name} (exit {done.returncode}); {log}:\n" + "\n".join(tail))
    codes: dict[str, int | None] = {}
    for file in module.files:
        codes |= json.loads((work / "mutants" / f"{file}.meta").read_text())["exit_code_by_key"]
    left = sorted(
        describe(work, module, key, code) for key, code in codes.items() if code not in KILLED | TIMEOUT
    )
    survivors = [s for s in left if not is_equivalent(s, listed)]
    return Outcome(
        mutants=len(codes),
        killed=sum(code in KILLED for code in codes.values()),
        survived=sum(s.code not in NO_TESTS for s in survivors),
        timeouts=sum(code in TIMEOUT for code in codes.values()),
        untested=sum(s.code in NO_TESTS for s in survivors),
        seconds=seconds,
        survivors=survivors,
        equivalent=[s for s in left if is_equivalent(s, listed)],
    )


def describe(work: Path, module: Module, key: str, code: int | None) -> Survivor:
    """Where a mutant is and what it changed, from mutmut's own diff of the function."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant  # the pinned version's, as `mutmut show`

    file = next(f for f in module.files if key.startswith(f.removesuffix(".py").replace("/", ".") + "."))
    with contextlib.chdir(work):
        diff = get_diff_for_mutant(key, path=file).splitlines()[2:]
    removed = [line[1:].strip() for line in diff if line.startswith("-")]
    added = [line[1:].strip() for line in diff if line.startswith("+")]
    line = _line_of(REPO / file, key, removed[0] if removed else "")
    return Survivor(file, line, " / ".join(removed) or "∅", " / ".join(added) or "∅", key, code)


def _line_of(path: Path, key: str, text: str) -> int:
    """The line of `text` inside the function the mutant `key` changed (0 if not found)."""
    mangled = key.rpartition(".")[2].partition("__mutmut_")[0]  # x_name, or xǁClassǁname for a method
    name = mangled.rpartition("ǁ")[2] if "ǁ" in mangled else mangled.removeprefix("x_")
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            for number in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                if lines[number - 1].strip() == text:
                    return number
    return 0


def requirements(names: list[str]) -> list[prerequisites.Requirement]:
    """Mutmut at the pinned version, and every file the chosen modules mutate or test."""

    def pinned() -> str | None:
        try:
            found = metadata.version("mutmut")
        except metadata.PackageNotFoundError:
            return "mutmut is not installed"
        return None if found == pin() else f"mutmut {found} is installed, {pin()} is pinned"

    fix = f"make install (or .venv/bin/pip install 'mutmut=={pin()}')"
    needed = [prerequisites.Requirement(f"mutmut {pin()}", pinned, fix)]
    for name in names:
        paths = [REPO / p for p in (*MODULES[name].files, *MODULES[name].tests) if p.endswith(".py")]
        needed.append(
            prerequisites.files(f"{name}'s files", paths, "add them or change bench/mutate.py's MODULES")
        )
    return needed


def main() -> None:
    """Mutate the chosen modules in turn and print the tables; exits 1 if one falls below the target."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "modules", nargs="*", metavar="MODULE", help=f"of {', '.join(MODULES)} (default: all)"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests, and exit")
    args = parser.parse_args()
    unknown = [name for name in args.modules if name not in MODULES]
    if unknown:
        parser.error(f"no module {', '.join(unknown)}; the modules are {', '.join(MODULES)}")
    names = args.modules or list(MODULES)
    if args.list:
        for name, module in MODULES.items():
            console.print(
                f"{name}: {' '.join(module.files)}  ←  pytest {' '.join(module.tests)}", markup=False
            )
        return
    prerequisites.require("bench.mutate", requirements(names))
    listed = equivalents()
    outcomes: dict[str, Outcome] = {}
    for name in names:
        console.print(f"{name}: mutating {', '.join(MODULES[name].files)} …")
        try:
            outcomes[name] = run(name, args.jobs, listed)
        except RuntimeError as exc:
            console.print(str(exc), markup=False, soft_wrap=True)
            raise SystemExit(1) from exc
    report(outcomes, listed)
    below = [name for name, outcome in outcomes.items() if outcome.kill_rate < TARGET]
    if below:
        console.print(f"below the {TARGET:.0%} target: {', '.join(below)}")
        raise SystemExit(1)


def report(outcomes: dict[str, Outcome], listed: dict[tuple[str, str], str]) -> None:
    """The table, the survivors, stale equivalents, and bench/results/mutate.json (updated for the
    modules run)."""
    table = Table(title=f"mutmut {pin()}: kill rate = (killed + timeouts) / (mutants - equivalent)")
    for column in [
        *["module", "mutants", "killed", "survived", "equivalent", "timeouts"],
        "no tests",
        "kill rate",
        "time",
    ]:
        table.add_column(column, justify="left" if column == "module" else "right")
    for name, o in outcomes.items():
        counts = (o.mutants, o.killed, o.survived, len(o.equivalent), o.timeouts, o.untested)
        table.add_row(name, *map(str, counts), f"{o.kill_rate:.1%}", f"{o.seconds:.0f} s")
    console.print(table)
    for name, o in outcomes.items():
        if o.survivors:
            console.print(f"\n{name}: {len(o.survivors)} not killed", markup=False)
            for survivor in o.survivors:
                console.print(f"  {survivor}", markup=False, highlight=False, soft_wrap=True)
    files = {file for name in outcomes for file in MODULES[name].files}
    matched = {(s.file, s.mutated) for o in outcomes.values() for s in o.equivalent}
    stale = sorted(entry for entry in listed if entry[0] in files and entry not in matched)
    if stale:
        console.print(f"\n{DOC.name} lists as equivalent what no longer survives (remove the entries):")
        for file, mutated in stale:
            console.print(f"  {file}: {mutated}", markup=False, highlight=False, soft_wrap=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    previous |= {
        name: asdict(o)
        | {
            "kill_rate": o.kill_rate,
            "survivors": [str(s) for s in o.survivors],
            "equivalent": [str(s) for s in o.equivalent],
        }
        for name, o in outcomes.items()
    }
    RESULTS.write_text(json.dumps(previous, indent=2) + "\n")


if __name__ == "__main__":
    main()
