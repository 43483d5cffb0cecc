"""What the layout lets a message say: the checks the ingest makes before it believes anything.

The contract checks a payload against itself; the broker's ACL confines a node to its own topic
level, not to its cameras. Here every message is checked against the facility layout and the receiving
clock: its node must be in the layout; its camera must be in the layout, served by the node whose
topic it came on and on the track the layout gives it; its times may run ahead of this clock by at
most the allowed skew. A detection is believed only about the stretch the layout says its camera
sees: its view and extents are clipped to it, and a detection that claims a locomotive where the
camera cannot look is refused whole. Pure functions; a refusal raises `Refused` with the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.errors import ContractError
from shared.layout import Camera, Facility
from shared.messages import VIEW_SLACK_M, Detection, LocoExtent, TrackSpan


class Refused(ContractError):
    """A message that follows the contract but not the layout or the clock."""


def known_node(facility: Facility, node_id: str) -> None:
    """The node must be in the layout."""
    if node_id not in facility.nodes:
        raise Refused(f"node {node_id!r} is not in the layout of {facility.site}")


def camera_of(facility: Facility, node_id: str, camera_id: str, track_id: str | None = None) -> Camera:
    """The layout's camera, if `node_id` serves it (and it watches `track_id`, when given)."""
    camera = facility.cameras.get(camera_id)
    if camera is None:
        raise Refused(f"camera {camera_id!r} is not in the layout of {facility.site}")
    if camera.node != node_id:
        raise Refused(f"camera {camera_id} belongs to node {camera.node} in the layout, not to {node_id}")
    if track_id is not None and track_id != camera.track:
        raise Refused(f"camera {camera_id} watches track {camera.track} in the layout, not {track_id}")
    return camera


def not_ahead(at: datetime, now: datetime, skew: timedelta, what: str) -> None:
    """`at` may be ahead of this clock by at most `skew` (a sender's clock running ahead, or a forgery,
    would otherwise outrank every real message after it)."""
    ahead = at - now
    if ahead > skew:
        raise Refused(
            f"{what} {at.isoformat()} is {ahead.total_seconds():.0f} s ahead of this clock "
            f"(at most {skew.total_seconds():.0f} s allowed)"
        )


def admit_detection(facility: Facility, d: Detection, now: datetime, skew: timedelta) -> Detection:
    """The detection as far as the layout lets its camera see: view and extents clipped to the
    camera's view (an end clipped by more than the slack becomes beyond view); raises Refused."""
    camera = camera_of(facility, d.node_id, d.camera_id, d.track_id)
    not_ahead(d.captured_at, now, skew, "captured_at")
    lo, hi = max(d.view.start_m, camera.view.start_m), min(d.view.end_m, camera.view.end_m)
    if (lo, hi) == (d.view.start_m, d.view.end_m) and all(
        lo <= e.start_m and e.end_m <= hi for e in d.extents
    ):
        return d  # the common case: all within what the camera sees
    if hi <= lo:
        raise Refused(
            f"view {d.view.start_m:g}-{d.view.end_m:g} m misses camera {d.camera_id}'s "
            f"{camera.view.start_m:g}-{camera.view.end_m:g} m in the layout"
        )
    extents = []
    for i, ext in enumerate(d.extents):
        if ext.end_m < lo - VIEW_SLACK_M or ext.start_m > hi + VIEW_SLACK_M:
            raise Refused(
                f"extents.{i} {ext.start_m:g}-{ext.end_m:g} m lies outside what camera {d.camera_id} "
                f"sees in the layout ({lo:g}-{hi:g} m)"
            )
        clipped = _clip(ext, lo, hi)
        if clipped is not None:
            extents.append(clipped)
    view = TrackSpan(start_m=lo, end_m=hi)
    if view == d.view and extents == d.extents:
        return d
    return d.model_copy(update={"view": view, "extents": extents})


def _clip(ext: LocoExtent, lo: float, hi: float) -> LocoExtent | None:
    start, end = max(ext.start_m, lo), min(ext.end_m, hi)
    if end <= start:
        return None  # a sliver within the slack, past the border: rounding, not a locomotive
    if (start, end) == (ext.start_m, ext.end_m):
        return ext
    return ext.model_copy(
        update={
            "start_m": start,
            "end_m": end,
            "start_beyond_view": ext.start_beyond_view or ext.start_m < lo - VIEW_SLACK_M,
            "end_beyond_view": ext.end_beyond_view or ext.end_m > hi + VIEW_SLACK_M,
        }
    )
