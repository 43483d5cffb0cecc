"""From text boxes to candidate numbers (pure geometry), as plate readers do it.

A painted number is often several boxes to the text detector: groups with a gap ("2800 5312"), a
series name apart from its number, a UIC number over three lines ("31 RIV" / "85 CH-SBBC" /
"5376 051-9"). Boxes on one line (same height, side by side, a gap of at most a few character heights)
and lines stacked left-aligned are joined into candidates; each box's text is cut into tokens (runs of
letters, runs of digits, dashes) so a candidate can leave out a neighbour's text that a box caught. A
space the recogniser read inside a box is a gap like the one between two boxes.
Which candidate is the number is for the formats to say (plate_rules): this module only proposes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Two boxes are on one line when, across the text's direction, their centres are within this share of
# the taller one's height, the directions within ~20 degrees,
TOLERANCE_Y = 0.5
MIN_PARALLEL = 0.94
# their heights within this ratio,
MAX_HEIGHT_RATIO = 1.6
# and the gap between them at most this many heights (a wide gap between groups; not the next word).
MAX_GAP = 2.5
# Boxes overlapping by more than this share of a height read the same text twice: never joined.
MAX_OVERLAP = 0.3
# Lines stack when the next one starts within this many heights below and within this of the left edge.
MAX_LINE_SPACING = 1.0
MAX_INDENT = 1.5
MAX_STACK = 3
# Longest line of boxes, and most lines, considered.
MAX_LINE_BOXES = 5
MAX_LINES = 64
# Longest run of tokens a candidate takes from one line.
MAX_TOKENS = 8
# A stacked line contributes at most its first few tokens (the number's groups come first on a line).
MAX_STACK_TOKENS = 4
# Confidence kept per join: of equal reads, the one that needed fewer joins wins.
JOIN_PENALTY = 0.99
_TOKEN = re.compile(r"[A-Z]+|[0-9]+|-")


@dataclass(frozen=True)
class TextRead:
    """One text box found in an image and what it reads."""

    text: str
    confidence: float  # mean probability of the characters read
    box: tuple[tuple[float, float], ...]  # corners in image pixels


@dataclass(frozen=True)
class _Box:
    read: TextRead
    x0: float
    y0: float
    y1: float
    height: float
    length: float
    centre: npt.NDArray[np.float64]
    along: npt.NDArray[np.float64]  # unit vector of the text's direction, left to right
    tokens: tuple[tuple[str, int], ...]  # each with the number of the space-separated part it is in


def candidates(reads: Sequence[TextRead]) -> list[tuple[str, float]]:
    """Every candidate text with its confidence (the least confident box it uses, less a little per
    join), each text once at its best confidence: single boxes, runs along a line, stacked lines."""
    boxes = [_box(read) for read in reads]
    boxes = [b for b in boxes if b.tokens]
    best: dict[str, float] = {}
    lines = _lines(boxes)
    for line in lines:
        for text, confidence in _along(line):
            best[text] = max(best.get(text, 0.0), confidence)
    for stack in _stacks(lines):
        for text, confidence in _down(stack):
            best[text] = max(best.get(text, 0.0), confidence)
    return sorted(best.items(), key=lambda item: -item[1])


def _box(read: TextRead) -> _Box:
    corners = np.asarray(read.box, np.float64)
    edges = np.roll(corners, -1, axis=0) - corners
    sides = np.linalg.norm(edges, axis=1)
    along = edges[int(np.argmax(sides))] / max(float(sides.max()), 1e-9)
    if along[0] < 0:
        along = -along
    return _Box(
        read,
        float(corners[:, 0].min()),
        float(corners[:, 1].min()),
        float(corners[:, 1].max()),
        float(max(sides.min(), 1.0)),
        float(sides.max()),
        corners.mean(axis=0),
        along,
        tuple(
            (token, part)
            for part, words in enumerate(read.text.upper().split())
            for token in _TOKEN.findall(words)
        ),
    )


def _gap(left: _Box, right: _Box) -> float | None:
    """The gap from `left` to `right` along the text's direction (perspective slants a plate's line),
    if `right` follows it on one line; else None."""
    height = max(left.height, right.height)
    normal = np.array([-left.along[1], left.along[0]])
    offset = right.centre - left.centre
    gap = float(offset @ left.along) - (left.length + right.length) / 2
    if (
        abs(float(offset @ normal)) <= TOLERANCE_Y * height
        and abs(float(left.along @ right.along)) >= MIN_PARALLEL
        and height / min(left.height, right.height) <= MAX_HEIGHT_RATIO
        and -MAX_OVERLAP * height <= gap <= MAX_GAP * height
    ):
        return gap
    return None


def _lines(boxes: list[_Box]) -> list[list[_Box]]:
    """Lines of boxes left to right, as long as they go from each box (a box may be followed by more
    than one: the same text found by both looks, or read two ways), each at most MAX_LINE_BOXES
    long, at most MAX_LINES in all."""
    followers = [
        [j for j, right in enumerate(boxes) if j != i and _gap(left, right) is not None]
        for i, left in enumerate(boxes)
    ]
    followed = {j for js in followers for j in js}
    lines: list[list[_Box]] = []

    def extend(path: list[int]) -> None:
        if len(lines) == MAX_LINES:
            return
        nexts = [j for j in followers[path[-1]] if j not in path] if len(path) < MAX_LINE_BOXES else []
        if not nexts:
            lines.append([boxes[k] for k in path])
        for j in nexts:
            extend([*path, j])

    # From the first box of each line, then from every other box (past MAX_LINE_BOXES a line's tail
    # would otherwise never start one).
    for start in sorted(range(len(boxes)), key=lambda i: i in followed):
        extend([start])
    return lines


_Token = tuple[str, int, int]  # text, index of its box in the line, part of the box's text


def _tokens(line: Sequence[_Box]) -> list[_Token]:
    """The line's tokens, each with the box and the part of its text it came from."""
    return [(token, k, part) for k, box in enumerate(line) for token, part in box.tokens]


def _joined(parts: Sequence[_Token], separators: Sequence[str]) -> Iterator[str]:
    """The tokens' text, with each of `separators` at every gap (between boxes or parts of a box)."""
    gaps = sum(1 for a, b in itertools.pairwise(parts) if a[1:] != b[1:])
    for choice in itertools.product(separators, repeat=gaps):
        out, used = [parts[0][0]], iter(choice)
        for previous, current in itertools.pairwise(parts):
            out.append((next(used) if previous[1:] != current[1:] else "") + current[0])
        yield "".join(out)


def _confidence(line: Sequence[_Box], used: set[int]) -> float:
    return min(line[k].read.confidence for k in used) * JOIN_PENALTY ** (len(used) - 1)


def _edge(tokens: Sequence[_Token], at: int) -> bool:
    """Whether a candidate may begin or end between tokens[at - 1] and tokens[at]: at a gap or beside
    a letter run, never inside a run of digits and dashes ("2026-03-02" gives no "03-02").
    """
    if at in (0, len(tokens)):
        return True
    before, after = tokens[at - 1], tokens[at]
    return before[1:] != after[1:] or before[0].isalpha() or after[0].isalpha()


def _along(line: list[_Box]) -> Iterator[tuple[str, float]]:
    """Runs of consecutive tokens along a line: a gap read as nothing or as a dash."""
    tokens = _tokens(line)
    for i in (i for i in range(len(tokens)) if _edge(tokens, i)):
        for j in range(i + 1, min(len(tokens), i + MAX_TOKENS) + 1):
            if not _edge(tokens, j):
                continue
            parts = tokens[i:j]
            confidence = _confidence(line, {k for _, k, _ in parts})
            for text in _joined(parts, ("", "-")):
                yield text, confidence


def _stacks(lines: list[list[_Box]]) -> list[list[list[_Box]]]:
    """Runs of 2-3 lines one under another, left-aligned and of one text height."""

    def below(upper: list[_Box], lower: list[_Box]) -> bool:
        height = max(upper[0].height, lower[0].height)
        spacing = min(b.y0 for b in lower) - max(b.y1 for b in upper)
        return (
            -0.2 * height <= spacing <= MAX_LINE_SPACING * height
            and abs(upper[0].x0 - lower[0].x0) <= MAX_INDENT * height
            and height / min(upper[0].height, lower[0].height) <= MAX_HEIGHT_RATIO
        )

    ordered = sorted(lines, key=lambda line: line[0].y0)
    stacks = []
    for i, first in enumerate(ordered):
        stack = [first]
        for lower in ordered[i + 1 :]:
            if len(stack) == MAX_STACK:
                break
            if below(stack[-1], lower):
                stack.append(lower)
                stacks.append(list(stack))
    return stacks


def _down(stack: list[list[_Box]]) -> Iterator[tuple[str, float]]:
    """Lines read one after the other: the first tokens of each line, joined without a gap (as a UIC
    number's groups are read across its lines) or with a dash (series above number)."""
    flat = [box for line in stack for box in line]
    prefixes = []
    for line in stack:
        tokens = _tokens(line)
        ends = [n for n in range(1, min(len(tokens), MAX_STACK_TOKENS) + 1) if _edge(tokens, n)]
        prefixes.append([tokens[:n] for n in ends])
    offsets = list(itertools.accumulate((len(line) for line in stack), initial=0))
    for choice in itertools.product(*prefixes):
        used = {offsets[row] + k for row, part in enumerate(choice) for _, k, _ in part}
        confidence = _confidence(flat, used)
        texts = ["".join(token for token, _, _ in part) for part in choice]
        for separator in ("", "-"):
            yield separator.join(texts), confidence
