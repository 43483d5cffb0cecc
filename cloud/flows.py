"""A data flow's estimator in the cloud, with its store and its clock.

Every estimator updates at the same instants: multiples of the update interval, each fusing what was
captured up to that instant. A live flow's estimator reaches an instant on the wall clock, `watermark`
after it (so detections still in transit count in the update they belong to); a flow on the data
clock reaches it once a detection captured `watermark` after it arrives. So a recording replayed as
fast as possible passes through the states, and reports the events, it did live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from cloud.config import CloudConfig, FlowConfig
from cloud.db.models import IdentityRow
from cloud.fse import FacilityStateEstimator, Observation, TrackState
from cloud.history import state_at
from cloud.identities import REMEMBERED_THUMBNAILS, Identities
from cloud.live import LiveFeed
from cloud.state_store import StateStore
from shared.layout import Facility
from shared.messages import PROD_FLOW

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class FlowRuntime:
    """One flow's estimator, store, identities (the recognitions' votes for its locomotives) and live
    feed (the map's stream); `next_tick` and `next_snapshot` run on data time for data flows."""

    name: str
    config: FlowConfig
    fse: FacilityStateEstimator
    store: StateStore
    identities: Identities
    interval: timedelta
    watermark: timedelta
    live: LiveFeed = field(default_factory=LiveFeed)
    next_tick: datetime | None = None
    next_snapshot: datetime | None = None
    updated_at: datetime | None = None  # the instant the state is as of
    last_at: datetime | None = None  # capture time of the newest observation fused

    @property
    def data_clock(self) -> bool:
        """Whether this flow runs on the data clock (detections' capture times) rather than the wall clock."""
        return self.config.clock == "data"

    def advance(self, at: datetime, update: Callable[[FlowRuntime, datetime], object]) -> None:
        """Data clock: run `update` at every instant that a detection captured at `at` closes."""
        reached = at - self.watermark
        if self.next_tick is None:
            self.next_tick = on_grid(reached, self.interval)
        stale_after = self.fse.settings.max_age + self.interval
        while self.next_tick <= reached:
            if self.last_at is not None and self.next_tick > self.last_at + stale_after:
                # Every view has gone stale and stays so until this detection: nothing can change
                # in between, so the steps through the silence are skipped, not run.
                self.next_tick = max(self.next_tick, on_grid(reached, self.interval))
            update(self, self.next_tick)
            self.next_tick += self.interval

    def observe(
        self, observation: Observation, update: Callable[[FlowRuntime, datetime], object]
    ) -> bool | None:
        """Fuse one observation (stepping a data clock up to it first); False if it was stale, None
        if the estimator's layout has no such camera (it was replaced meanwhile)."""
        if self.data_clock:
            self.advance(observation.at, update)
        fse = self.fse  # once: a layout change may swap it meanwhile
        if observation.camera_id not in fse.facility.cameras:
            return None
        fused = fse.observe(observation)
        if fused and (self.last_at is None or observation.at > self.last_at):
            self.last_at = observation.at
        return fused

    def state_at(self, at: datetime) -> list[TrackState] | None:
        """The flow's state at a past moment, recomputed with its estimator's settings from what was
        stored; None when nothing was recorded by then."""
        fse = self.fse
        past = self.store.past(at, fse.settings.max_age)
        return None if past is None else state_at(fse.facility, past, fse.settings)


def on_grid(at: datetime, interval: timedelta) -> datetime:
    """The last update instant at or before `at` (a multiple of `interval` since the UNIX epoch)."""
    step = interval // timedelta(microseconds=1)
    since = (at - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=since - since % step)


Observe = Callable[[str, Observation], bool | None]


def one_estimator(fse: FacilityStateEstimator, flow: str = PROD_FLOW) -> Observe:
    """What the ingest calls to fuse a detection, for a single estimator of one flow (benchmarks, tools)."""

    def observe(observed_flow: str, observation: Observation) -> bool | None:
        if observed_flow != flow or observation.camera_id not in fse.facility.cameras:
            return None
        return fse.observe(observation)

    return observe


def restore_flow(
    config: CloudConfig,
    name: str,
    engine: Engine,
    facility: Facility,
    new_id: Callable[[], str],
    identity_rows: list[IdentityRow],
) -> FlowRuntime:
    """A flow's runtime with its present locomotives and its identities read back from the database."""
    flow_config = config.flows[name]
    store = StateStore(engine, name)
    fse = FacilityStateEstimator(facility, new_id, flow_config.fse)
    fse.restore(store.present())
    identities = Identities()
    # Ids are unique across flows: every row fits one flow only.
    identities.restore(identity_rows, store.counted_thumbnails(REMEMBERED_THUMBNAILS))
    interval = timedelta(seconds=flow_config.update_interval_s or config.update_interval_s)
    watermark = timedelta(seconds=config.watermark_s)
    return FlowRuntime(name, flow_config, fse, store, identities, interval, watermark)
