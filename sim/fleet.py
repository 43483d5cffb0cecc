"""Locomotive series of the simulated fleet: dimensions, body shapes, liveries and plate numbers.

Dimensions follow the real series (lengths over buffers); colours are BGR for OpenCV. Plates use
Latin look-alikes of the Cyrillic series names (ТЭМ2 → TEM2), as painted numbers are read by OCR.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

Color = tuple[int, int, int]

# Heights above the rail head, metres.
FRAME_TOP_M = 1.25
BODY_TOP_M = 4.6
HOOD_TOP_M = 3.5
CAB_TOP_M = 4.4
BODY_HALF_WIDTH_M = 1.6
UNDER_HALF_WIDTH_M = 1.45
SECTION_GAP_M = 0.6
CAB_LENGTH_M = 3.2


class BodyStyle(StrEnum):
    """How the superstructure is built."""

    HOOD = "hood"  # shunter: narrow hoods either side of one cab
    CARBODY = "carbody"  # full-width body, cab at each outer end


@dataclass(frozen=True)
class Series:
    """A locomotive series (model)."""

    name: str
    sections: int
    section_length_m: float
    style: BodyStyle
    body: Color
    stripe: Color
    roof: Color
    lettering: Color
    digits: int = 4
    cab_at: float = 0.3  # hood units: cab centre as a fraction of the length from the A end

    @property
    def length_m(self) -> float:
        """Length over buffers of the whole locomotive."""
        return self.sections * self.section_length_m + (self.sections - 1) * SECTION_GAP_M


SERIES: dict[str, Series] = {
    s.name: s
    for s in (
        Series(
            "TEM2", 1, 16.97, BodyStyle.HOOD, (60, 110, 40), (40, 200, 230), (50, 70, 50), (235, 235, 235)
        ),
        Series(
            "CHME3",
            1,
            17.22,
            BodyStyle.HOOD,
            (40, 40, 170),
            (180, 220, 235),
            (60, 60, 70),
            (235, 235, 235),
            cab_at=0.38,
        ),
        Series(
            "2TE116", 2, 18.15, BodyStyle.CARBODY, (50, 100, 30), (30, 190, 240), (60, 70, 60), (30, 200, 240)
        ),
        Series(
            "2TE25A",
            2,
            18.5,
            BodyStyle.CARBODY,
            (40, 30, 160),
            (150, 150, 150),
            (90, 90, 95),
            (240, 240, 240),
            digits=3,
        ),
        Series(
            "TE33A",
            1,
            21.4,
            BodyStyle.CARBODY,
            (140, 90, 30),
            (230, 230, 230),
            (110, 110, 110),
            (240, 240, 240),
        ),
        Series(
            "2M62", 2, 17.55, BodyStyle.CARBODY, (50, 80, 40), (60, 60, 200), (55, 65, 55), (220, 230, 230)
        ),
    )
}


@dataclass(frozen=True)
class Locomotive:
    """One locomotive of the fleet; its plate is what the number recogniser must read."""

    series: Series
    number: str

    @property
    def plate(self) -> str:
        """The painted number, e.g. '2TE116-0347'."""
        return f"{self.series.name}-{self.number}"

    @property
    def length_m(self) -> float:
        """Length over buffers."""
        return self.series.length_m


@dataclass(frozen=True)
class Box:
    """An axis-aligned part of a locomotive in loco coordinates (x from the A end, metres)."""

    x0: float
    x1: float
    half_width: float
    z0: float
    z1: float
    part: str  # under | body | hood | cab | gangway
    cab_at_x0: bool = False
    cab_at_x1: bool = False


def make_fleet(rng: np.random.Generator, size: int, mix: dict[str, float] | None = None) -> list[Locomotive]:
    """`size` locomotives with unique plates, series drawn by the weights in `mix`."""
    names = list(mix or dict.fromkeys(SERIES, 1.0))
    weights = np.array([(mix or {}).get(n, 1.0) for n in names], dtype=np.float64)
    fleet: dict[str, Locomotive] = {}
    while len(fleet) < size:
        series = SERIES[names[int(rng.choice(len(names), p=weights / weights.sum()))]]
        number = str(int(rng.integers(1, 10**series.digits))).zfill(series.digits)
        loco = Locomotive(series, number)
        fleet.setdefault(loco.plate, loco)
    return list(fleet.values())


def boxes(series: Series) -> list[Box]:
    """The boxes a locomotive of `series` is drawn from, A end at x = 0."""
    length = series.length_m
    parts = [Box(0.0, length, UNDER_HALF_WIDTH_M, 0.0, FRAME_TOP_M, "under")]
    if series.style is BodyStyle.HOOD:
        c0 = series.cab_at * length - CAB_LENGTH_M / 2
        c1 = c0 + CAB_LENGTH_M
        parts += [
            Box(0.3, c0, 1.1, FRAME_TOP_M, HOOD_TOP_M, "hood"),
            Box(c0, c1, BODY_HALF_WIDTH_M, FRAME_TOP_M, CAB_TOP_M, "cab", cab_at_x0=True, cab_at_x1=True),
            Box(c1, length - 0.3, 1.1, FRAME_TOP_M, HOOD_TOP_M, "hood"),
        ]
        return parts
    for k in range(series.sections):
        x0 = k * (series.section_length_m + SECTION_GAP_M)
        x1 = x0 + series.section_length_m
        both = series.sections == 1
        parts.append(
            Box(
                x0,
                x1,
                BODY_HALF_WIDTH_M,
                FRAME_TOP_M,
                BODY_TOP_M,
                "body",
                cab_at_x0=both or k == 0,
                cab_at_x1=both or k == series.sections - 1,
            )
        )
        if k < series.sections - 1:
            parts.append(Box(x1, x1 + SECTION_GAP_M, 0.8, FRAME_TOP_M + 0.2, BODY_TOP_M - 0.6, "gangway"))
    return parts
