"""Asking the edge for fresh thumbnails of locomotives not yet identified.

An edge node sends a locomotive's thumbnail when it appears or moves, then every few minutes. A
thumbnail that showed no legible number (taken as it drove in, half out of view, in a shadow) would
leave a standing locomotive unnamed until that refresh. So a locomotive whose series or number is not
settled a little after it was first seen gets a thumbnail asked of each camera that sees it; then
again with the wait doubling, up to a ceiling, so one that cannot be read (its number covered) costs
a thumbnail every few minutes, not a stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloud.fse import Loco
from cloud.identities import Identity
from shared.layout import Facility
from shared.messages import RequestThumbnail, TrackSpan


@dataclass
class _Asking:
    next_at: float
    wait_s: float


@dataclass(frozen=True)
class Ask:
    """One request for a node: a thumbnail of what `command.camera_id` sees over `command.span`."""

    node_id: str
    command: RequestThumbnail


class ThumbnailAsks:
    """Which cameras to ask, and when, for the locomotives not yet identified (pure: no I/O)."""

    def __init__(self, facility: Facility, first_s: float, max_s: float) -> None:
        self.facility = facility
        self.first_s = first_s
        self.max_s = max(max_s, first_s)
        self._asking: dict[str, _Asking] = {}

    def due(self, locos: list[Loco], identity: Callable[[str], Identity | None], now: float) -> list[Ask]:
        """The asks due at monotonic time `now` for these locomotives; forgets those gone or settled."""
        asks: list[Ask] = []
        unnamed = {loco.loco_id: loco for loco in locos if not _settled(identity(loco.loco_id))}
        for loco_id in list(self._asking):
            if loco_id not in unnamed:
                del self._asking[loco_id]
        for loco_id, loco in unnamed.items():
            asking = self._asking.setdefault(loco_id, _Asking(now + self.first_s, self.first_s))
            if now < asking.next_at:
                continue
            asking.wait_s = min(asking.wait_s * 2, self.max_s)
            asking.next_at = now + asking.wait_s
            asks.extend(self._asks_for(loco))
        return asks

    def _asks_for(self, loco: Loco) -> list[Ask]:
        asks = []
        for camera_id, camera in sorted(self.facility.cameras_on_track(loco.track_id).items()):
            start, end = max(camera.view.start_m, loco.start_m), min(camera.view.end_m, loco.end_m)
            if start < end:
                span = TrackSpan(start_m=start, end_m=end)
                asks.append(Ask(camera.node, RequestThumbnail(camera_id=camera_id, span=span)))
        return asks


def _settled(identity: Identity | None) -> bool:
    return identity is not None and identity.series is not None and identity.plate is not None
