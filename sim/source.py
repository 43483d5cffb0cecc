"""The simulator as a camera: `sim://<camera id>` sources that play a deterministic world, in real
time (frames paced by the wall clock) or as fast as they are read, with the camera's faults applied."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from pydantic import Field, ValidationError

from shared.errors import SimulatorError
from shared.frames import Frame
from shared.layout import Facility
from shared.strict import StrictModel
from sim.render import CameraRenderer
from sim.scenario import FaultKind
from sim.truth import TruthExtent, TruthPlate, visible_extents
from sim.world import World

SIM_SCHEME = "sim"
# A black frame is not all zeros: sensors still add noise, and the OSD is still burnt in.
BLACK_FRAME_NOISE = 3.0


class SimUrl(StrictModel):
    """Parameters of a `sim://<camera id>?fps=2&speed=1&realtime=true` source."""

    camera_id: str
    fps: float = Field(2.0, gt=0, le=60, description="Frames per second delivered.")
    speed: float = Field(1.0, gt=0, le=10000, description="Simulation seconds per wall second.")
    realtime: bool = Field(True, description="Pace frames by the wall clock; false: as fast as read.")


def parse_sim_url(url: str) -> SimUrl:
    """Parse a sim:// URL; raises SimulatorError naming the bad parameter."""
    parts = urlsplit(url)
    if parts.scheme != SIM_SCHEME or not parts.netloc:
        raise SimulatorError(f"{url!r} is not a sim://<camera id> URL")
    try:
        return SimUrl.model_validate({"camera_id": parts.netloc, **dict(parse_qsl(parts.query))})
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SimulatorError(f"{url!r}: {reasons}") from exc


@dataclass(frozen=True)
class SimFrame:
    """One delivered frame with what the simulator knows about it."""

    t: float
    captured_at: datetime
    image: Frame | None  # None during a dropout
    fault: FaultKind | None
    extents: list[TruthExtent]
    plates: list[TruthPlate] = field(default_factory=list)


class SimCamera:
    """A simulated camera. `read()` mirrors cv2.VideoCapture: (False, None) while the stream drops."""

    def __init__(
        self,
        facility: Facility,
        world: World,
        url: SimUrl,
        *,
        epoch: float | None = None,
    ) -> None:
        if url.camera_id not in facility.cameras:
            raise SimulatorError(f"sim://{url.camera_id}: no such camera in facility {facility.site}")
        self.facility = facility
        self.world = world
        self.url = url
        self.renderer = CameraRenderer(facility, url.camera_id, world)
        # Simulation second 0 happens at wall time `epoch`; processes sharing it show the same world.
        self.epoch = time.time() if epoch is None else epoch
        self._frames_read = 0
        self._frozen: dict[float, Frame] = {}
        self._released = threading.Event()

    def frame_at(self, t: float) -> SimFrame:
        """The frame at simulation second t, with the camera's fault applied."""
        fault = self.world.fault_at(self.url.camera_id, t)
        captured = self.world.scenario.start + timedelta(seconds=t)
        extents = visible_extents(self.facility, self.url.camera_id, self.world.locos_at(t))
        if fault is None:
            rendered = self.renderer.render(t)
            return SimFrame(t, captured, rendered.image, None, extents, rendered.plates)
        kind, since = fault
        if kind is FaultKind.DROPOUT:
            return SimFrame(t, captured, None, kind, extents)
        if kind is FaultKind.FROZEN:
            if since not in self._frozen:
                self._frozen = {since: self.renderer.render(since).image}
            return SimFrame(t, captured, self._frozen[since].copy(), kind, extents)
        rng = np.random.default_rng([self.world.scenario.seed, int(t * 1000)])
        dark = np.clip(rng.normal(4, BLACK_FRAME_NOISE, self.renderer.frame_shape), 0, 255)
        return SimFrame(t, captured, dark.astype(np.uint8), kind, extents)

    def next_frame(self) -> SimFrame:
        """The next frame: paced by the wall clock in real time, else one frame period later."""
        if self._released.is_set():
            raise SimulatorError(f"sim://{self.url.camera_id} was released")
        period = 1.0 / self.url.fps
        if self.url.realtime:
            elapsed = time.time() - self.epoch
            slot = np.floor(elapsed / period) + 1
            self._released.wait(max(0.0, self.epoch + slot * period - time.time()))
            t = float(slot * period * self.url.speed)
        else:
            t = self._frames_read * period * self.url.speed
        self._frames_read += 1
        return self.frame_at(t)

    def read(self) -> tuple[bool, Frame | None]:
        """Like cv2.VideoCapture.read()."""
        if self._released.is_set():
            return False, None
        frame = self.next_frame()
        return frame.image is not None, frame.image

    def release(self) -> None:
        """Stop delivering frames; a blocked read returns at once."""
        self._released.set()
