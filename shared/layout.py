"""The facility layout: tracks, repair stations, edge nodes and cameras with their calibrations.

Loaded once at start from YAML; every rule that spans several entries (references, overlaps, a
calibration that must agree with the interval a camera claims to see) is checked here, and each
failure names the key at fault, e.g. ``cameras.T2-C3.track: unknown track 'T9'``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Self

import numpy as np
from pydantic import Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.calibration import TrackCalibration
from shared.errors import CalibrationError, LayoutError
from shared.ids import Identifier, is_identifier
from shared.strict import StrictModel
from shared.yaml_config import load_model, validate_model

# A polyline drawn on the site plan may differ from the surveyed length by this much before we
# suspect a typo in one of them.
POLYLINE_LENGTH_TOLERANCE = 0.01
# How far a camera's claimed view may extend past where its calibration puts the image border.
VIEW_TOLERANCE_M = 0.5


class Track(StrictModel):
    """A track: its surveyed length and its polyline on the site plan (metres)."""

    name: str = Field("", description="Human name of the track, e.g. 'Track 3 (diesel bay)'.")
    length_m: float = Field(gt=0, le=5000, description="Usable length of the track in metres.")
    polyline: list[tuple[float, float]] = Field(
        min_length=2, description="Site-plan points (x, y) in metres from track metre 0 to its end."
    )

    @model_validator(mode="after")
    def _polyline_matches_length(self) -> Self:
        drawn = self.polyline_length()
        if abs(drawn - self.length_m) > POLYLINE_LENGTH_TOLERANCE * self.length_m:
            raise ValueError(f"polyline is {drawn:.2f} m long but length_m is {self.length_m} m")
        return self

    def polyline_length(self) -> float:
        """Length of the drawn polyline in metres."""
        pts = np.asarray(self.polyline, dtype=np.float64)
        return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())

    def site_point(self, track_m: float) -> tuple[float, float]:
        """Site-plan (x, y) of a track metre, measured along the polyline."""
        pts = np.asarray(self.polyline, dtype=np.float64)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        scale = self.polyline_length() / self.length_m
        target = min(max(track_m * scale, 0.0), float(seg.sum()))
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        i = min(int(np.searchsorted(cum, target, side="right")) - 1, len(seg) - 1)
        frac = 0.0 if seg[i] == 0 else (target - cum[i]) / seg[i]
        x, y = pts[i] + frac * (pts[i + 1] - pts[i])
        return float(x), float(y)


class Interval(StrictModel):
    """An interval along a track in metres."""

    start_m: float = Field(ge=0, description="Lower track metre.")
    end_m: float = Field(description="Upper track metre.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end_m <= self.start_m:
            raise ValueError(f"end_m ({self.end_m}) must be greater than start_m ({self.start_m})")
        return self

    @property
    def length_m(self) -> float:
        """Length in metres."""
        return self.end_m - self.start_m

    def overlap(self, other: Interval) -> float:
        """Length of the overlap with another interval (0 when disjoint)."""
        return max(0.0, min(self.end_m, other.end_m) - max(self.start_m, other.start_m))


class Station(Interval):
    """A repair station: a named interval along one track."""

    name: str = Field(description="Name shown to operators, e.g. 'TR-1 wheel lathe'.")
    track: Identifier = Field(description="Id of the track the station lies on.")


class Node(StrictModel):
    """An edge node: the box beside a station that captures its cameras."""

    name: str = Field("", description="Human name of the node.")
    host: str = Field("", description="Hostname or address of the box (used by the Ansible inventory).")


class CalibrationPoint(StrictModel):
    """A surveyed point: the pixel and the track position it shows."""

    image: tuple[float, float] = Field(description="Pixel (u, v) in the camera image.")
    track_m: float = Field(description="Metres along the track.")
    offset_m: float = Field(
        0.0, ge=-10, le=10, description="Lateral offset from the track centreline, positive to the left."
    )


class Calibration(StrictModel):
    """Image ↔ track mapping of one camera, fitted from surveyed points."""

    points: list[CalibrationPoint] = Field(
        min_length=4, description="At least 4 surveyed points, on both rails, spread over the view."
    )
    max_error_px: float = Field(
        3.0, gt=0, description="Largest reprojection error accepted for any point, in pixels."
    )
    _fitted: TrackCalibration | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _fit(self) -> Self:
        image = np.array([p.image for p in self.points], dtype=np.float64)
        track = np.array([(p.track_m, p.offset_m) for p in self.points], dtype=np.float64)
        try:
            fitted = TrackCalibration.fit(image, track)
        except CalibrationError as exc:
            raise ValueError(str(exc)) from exc
        if fitted.max_error_px > self.max_error_px:
            raise ValueError(
                f"points disagree with one another: worst reprojection error {fitted.max_error_px:.1f} px "
                f"exceeds max_error_px {self.max_error_px}; re-survey the points"
            )
        self._fitted = fitted
        return self

    @property
    def model(self) -> TrackCalibration:
        """The fitted homography."""
        if self._fitted is None:
            raise RuntimeError("a calibration is fitted when validated; this one was built unvalidated")
        return self._fitted


class Camera(StrictModel):
    """An IP camera: where its stream comes from and which stretch of track it sees."""

    name: str = Field("", description="Human name of the camera.")
    node: Identifier = Field(description="Id of the edge node that captures this camera.")
    source: str = Field(
        min_length=1, description="rtsp://…, a video file path, or sim://<camera id> for the simulator."
    )
    track: Identifier = Field(description="Id of the track this camera watches.")
    view: Interval = Field(description="The interval of track metres whose centreline is in the image.")
    resolution: tuple[int, int] = Field((1280, 720), description="Image width and height in pixels.")
    hfov_deg: float = Field(
        70.0, gt=10, lt=170, description="Horizontal field of view of the lens (used by the simulator)."
    )
    calibration: Calibration = Field(description="Surveyed image ↔ track points.")

    @model_validator(mode="after")
    def _resolution_sane(self) -> Self:
        w, h = self.resolution
        if not (64 <= w <= 8192 and 64 <= h <= 8192):
            raise ValueError(f"resolution {w}x{h} is outside 64..8192 pixels")
        for i, point in enumerate(self.calibration.points):
            u, v = point.image
            if not (0 <= u < w and 0 <= v < h):
                raise ValueError(f"calibration.points.{i}.image ({u}, {v}) lies outside the {w}x{h} image")
        return self

    @property
    def calibration_version(self) -> str:
        """A short digest of the calibration and view in force: what a snapshot or a detection was taken
        under, so a picture is never read against a calibration it was not taken with."""
        return calibration_version(self.calibration, self.view)


def calibration_version(calibration: Calibration, view: Interval) -> str:
    """12 hex digits of the SHA-256 of the calibration's points, its error bound and the view."""
    canonical = json.dumps(
        {"calibration": calibration.model_dump(mode="json"), "view": view.model_dump(mode="json")},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class Facility(StrictModel):
    """A whole depot: the one description that edge, cloud, simulator and map share."""

    site: Identifier = Field(description="Id of the facility; the first level of every MQTT topic.")
    name: str = Field(description="Name shown to operators.")
    tracks: dict[str, Track] = Field(min_length=1, description="Tracks by id.")
    stations: dict[str, Station] = Field(default_factory=dict, description="Repair stations by id.")
    nodes: dict[str, Node] = Field(min_length=1, description="Edge nodes by id.")
    cameras: dict[str, Camera] = Field(min_length=1, description="Cameras by id.")

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        issues = _id_issues(self) + _station_issues(self) + _camera_issues(self)
        if issues:
            raise ValidationError.from_exception_data(
                "Facility",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("layout", "{message}", {"message": message}),
                        loc=loc,
                        input=None,
                    )
                    for loc, message in issues
                ],
            )
        return self

    def cameras_of_node(self, node_id: str) -> dict[str, Camera]:
        """The cameras an edge node captures."""
        return {cid: cam for cid, cam in self.cameras.items() if cam.node == node_id}

    def cameras_on_track(self, track_id: str) -> dict[str, Camera]:
        """The cameras that watch a track."""
        return {cid: cam for cid, cam in self.cameras.items() if cam.track == track_id}

    def stations_on_track(self, track_id: str) -> dict[str, Station]:
        """The stations of a track, by increasing track metre."""
        found = [(sid, st) for sid, st in self.stations.items() if st.track == track_id]
        return dict(sorted(found, key=lambda item: item[1].start_m))

    def station_at(
        self, track_id: str, start_m: float, end_m: float, kept: str | None = None, margin_m: float = 0.0
    ) -> str | None:
        """The station of a track that overlaps [start_m, end_m] the most, or None. The `kept` station
        (where the locomotive was) stays while it overlaps and no other overlaps it by more than
        `margin_m`: one standing astride two stations does not flip between them with each centimetre
        its measured ends move."""
        span = Interval(start_m=max(start_m, 0.0), end_m=max(end_m, start_m + 1e-6, 1e-6))
        overlaps = {sid: st.overlap(span) for sid, st in self.stations_on_track(track_id).items()}
        best = max(((o, sid) for sid, o in overlaps.items()), default=(0.0, None))
        if kept is not None and overlaps.get(kept, 0.0) > 0 and best[0] <= overlaps[kept] + margin_m:
            return kept
        return best[1] if best[0] > 0 else None


_Loc = tuple[str | int, ...]


def _id_issues(f: Facility) -> list[tuple[_Loc, str]]:
    return [
        ((section, key), "ids may hold letters, digits, '_', '.', '-' (max 64)")
        for section in ("tracks", "stations", "nodes", "cameras")
        for key in getattr(f, section)
        if not is_identifier(key)
    ]


def _station_issues(f: Facility) -> list[tuple[_Loc, str]]:
    issues: list[tuple[_Loc, str]] = []
    for sid, st in f.stations.items():
        track = f.tracks.get(st.track)
        if track is None:
            issues.append(
                (("stations", sid, "track"), f"unknown track {st.track!r} (known: {_known(f.tracks)})")
            )
        elif st.end_m > track.length_m:
            issues.append(
                (
                    ("stations", sid, "end_m"),
                    f"{st.end_m} m lies beyond the end of track {st.track} ({track.length_m} m)",
                )
            )
    ordered = sorted(f.stations.items(), key=lambda item: (item[1].track, item[1].start_m))
    for (prev_id, prev), (sid, st) in itertools.pairwise(ordered):
        if prev.track == st.track and st.overlap(prev) > 0:
            issues.append(
                (
                    ("stations", sid),
                    f"overlaps station {prev_id} on track {st.track} between "
                    f"{st.start_m} and {min(prev.end_m, st.end_m)} m",
                )
            )
    return issues


def _camera_issues(f: Facility) -> list[tuple[_Loc, str]]:
    issues: list[tuple[_Loc, str]] = []
    for cid, cam in f.cameras.items():
        if cam.node not in f.nodes:
            issues.append((("cameras", cid, "node"), f"unknown node {cam.node!r} (known: {_known(f.nodes)})"))
        track = f.tracks.get(cam.track)
        if track is None:
            issues.append(
                (("cameras", cid, "track"), f"unknown track {cam.track!r} (known: {_known(f.tracks)})")
            )
            continue
        if cam.view.end_m > track.length_m:
            issues.append(
                (
                    ("cameras", cid, "view", "end_m"),
                    f"{cam.view.end_m} m lies beyond the end of track {cam.track} ({track.length_m} m)",
                )
            )
        if cam.source.startswith("sim://") and cam.source.removeprefix("sim://").split("?")[0] != cid:
            issues.append((("cameras", cid, "source"), f"a simulated source must be sim://{cid}"))
        issues.extend(_view_issues(cid, cam, track))
    return issues


def _view_issues(cid: str, cam: Camera, track: Track) -> list[tuple[_Loc, str]]:
    """The claimed view must agree with where the calibration puts the rail inside the image."""
    w, h = cam.resolution
    seen = cam.calibration.model.rail_interval_in_image(w, h, -track.length_m, 2 * track.length_m)
    if seen is None:
        return [(("cameras", cid, "calibration"), "the track centreline never falls inside the image")]
    lo, hi = seen
    issues: list[tuple[_Loc, str]] = []
    if cam.view.start_m < lo - VIEW_TOLERANCE_M:
        issues.append(
            (
                ("cameras", cid, "view", "start_m"),
                f"{cam.view.start_m} m is outside the image; the "
                f"calibration puts the image border at {lo:.2f} m",
            )
        )
    if cam.view.end_m > hi + VIEW_TOLERANCE_M:
        issues.append(
            (
                ("cameras", cid, "view", "end_m"),
                f"{cam.view.end_m} m is outside the image; the "
                f"calibration puts the image border at {hi:.2f} m",
            )
        )
    return issues


def _known(items: dict[str, Any]) -> str:
    return ", ".join(sorted(items)) or "none"


def parse_facility(data: Any, source: str = "<facility>") -> Facility:
    """Validate a parsed YAML/JSON document as a facility; raises LayoutError naming each bad key."""
    return validate_model(Facility, data, source, LayoutError)


def load_facility(path: str | Path) -> Facility:
    """Load and validate a facility layout YAML file."""
    return load_model(Facility, path, LayoutError)
