"""The state at a past moment: recomputed from snapshot, position history and observations, late
backlog data included, with the ids shown live."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cloud.db.engine import make_engine, upgrade
from cloud.fse import FacilityStateEstimator, FseSettings, Loco, Observation, SeenExtent, TrackState
from cloud.history import PastInputs, state_at
from cloud.ingest import Ingest
from cloud.state_store import StateStore
from shared.codec import encode
from shared.layout import Facility
from shared.messages import LocoExtent, TrackSpan
from shared.topics import Topic, TopicKind
from tests import factories
from tests.conftest import DatabaseFactory

MAX_AGE = FseSettings().max_age

T0 = factories.NOW


def _seen(camera: str, at_s: float, *extents: tuple[float, float]) -> Observation:
    return Observation(
        camera, T0 + timedelta(seconds=at_s), tuple(SeenExtent(a, b, False, False, 0.9) for a, b in extents)
    )


def _tracks(facility: Facility, past: PastInputs) -> dict[str, list[tuple[str, float, float]]]:
    return {
        t.track_id: [(loco.loco_id, loco.start_m, loco.end_m) for loco in t.locos]
        for t in state_at(facility, past)
    }


def test_late_data_moves_a_locomotive_in_the_past_and_it_keeps_its_id(facility: Facility) -> None:
    past = PastInputs(
        at=T0 + timedelta(seconds=30),
        locos=[factories.loco("L00007", "T1", 14.0, 22.0)],
        observations=[_seen("T1-C2", 25, (15.0, 23.0)), _seen("T2-C2", 28, (16.0, 25.0))],
    )
    tracks = _tracks(facility, past)
    [(loco_id, start, end)] = tracks["T1"]
    assert loco_id == "L00007" and (start, end) == pytest.approx((15.0, 23.0), abs=0.11)
    assert [loco[0] for loco in tracks["T2"]] == ["unrecorded-1"]  # never tracked live


def test_a_locomotive_seen_gone_is_not_in_the_past_state(facility: Facility) -> None:
    past = PastInputs(
        at=T0 + timedelta(seconds=30), locos=[factories.loco("L00007", "T1", 14.0, 22.0)], observations=[]
    )
    assert [loco[0] for loco in _tracks(facility, past)["T1"]] == ["L00007"]  # unseen: kept
    seen_empty = PastInputs(past.at, past.locos, [_seen("T1-C2", 29)])
    assert _tracks(facility, seen_empty)["T1"] == []


def test_observations_outside_the_window_do_not_count(facility: Facility) -> None:
    past = PastInputs(
        at=T0 + timedelta(seconds=30),
        locos=[],
        observations=[_seen("T1-C2", 5, (15.0, 23.0)), _seen("T1-C2", 31, (15.0, 23.0))],
    )
    assert _tracks(facility, past)["T1"] == []


def test_the_database_gives_what_the_past_needs(
    database_factory: DatabaseFactory, facility: Facility
) -> None:
    url = database_factory()
    upgrade(url)
    engine = make_engine(url)
    try:
        store = StateStore(engine)
        assert store.past(T0, MAX_AGE) is None
        loco = factories.loco("L00007", "T1", 14.0, 22.0)
        store.save(T0, [loco], [])
        store.snapshot(T0, _state_with(facility, loco))
        store.save(T0 + timedelta(seconds=10), [factories.loco("L00007", "T1", 14.6, 22.6)], [])
        ingest = Ingest(engine, facility)
        ingest.start()
        view = facility.cameras["T1-C2"].view
        backlog = factories.detection(
            node_id="edge-bay1",
            camera_id="T1-C2",
            seq=1,
            historical=True,
            captured_at=T0 + timedelta(seconds=25),
            view=TrackSpan(start_m=view.start_m, end_m=view.end_m),
            extents=[
                LocoExtent(
                    start_m=15.0, end_m=23.0, start_beyond_view=False, end_beyond_view=False, confidence=0.9
                )
            ],
        )
        topic = Topic(TopicKind.DETECTION, facility.site, "edge-bay1", flow="prod", camera="T1-C2")
        ingest.handle(str(topic), encode(backlog), lambda: None)
        ingest.stop()

        at_ten = store.past(T0 + timedelta(seconds=12), MAX_AGE)
        assert at_ten is not None and [(x.loco_id, x.start_m) for x in at_ten.locos] == [("L00007", 14.6)]
        at_thirty = store.past(T0 + timedelta(seconds=30), MAX_AGE)
        assert at_thirty is not None and len(at_thirty.observations) == 1
        [(loco_id, start, end)] = _tracks(facility, at_thirty)["T1"]
        assert loco_id == "L00007" and (start, end) == pytest.approx((15.0, 23.0), abs=0.11)
    finally:
        engine.dispose()


def _state_with(facility: Facility, loco: Loco) -> list[TrackState]:
    fse = FacilityStateEstimator(facility)
    fse.restore([loco])
    return fse.state()
