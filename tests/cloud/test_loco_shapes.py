"""A locomotive's fields are declared once (cloud.locomotive.LocoBase and LocoKept): the estimator's Loco,
the table row, the API's model and the snapshot derive from them, and each converts to the others
without losing a field. The API shows a locomotive as it did before they were shared."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import Session, SQLModel

from cloud.api.public import tracks_public
from cloud.api.schemas import LocoPublic
from cloud.db.engine import make_engine, upgrade
from cloud.db.models import IdentityRow, LocomotiveRow, SnapshotRow
from cloud.fse import Loco, TrackState
from cloud.identities import Identities
from cloud.locomotive import LocoBase, LocoKept
from cloud.state_store import StateStore, from_row, to_row
from shared.layout import Facility
from tests import factories
from tests.conftest import DatabaseFactory

NOW = factories.NOW
RECOGNISED = {"model", "model_confidence", "number", "number_confidence", "thumbnail_url", "number_also_on"}
# What GET /api/state answered for these two locomotives before their fields were declared once (and
# `number_also_on`, added since).
SHOWN = (
    '[{"loco_id":"L00001","track_id":"T1","start_m":14.0,"end_m":22.5,"start_seen":true,"end_seen":true,'
    '"station":null,"moving":false,"first_seen":"2026-03-02T09:00:00Z","last_seen":"2026-03-02T10:00:00Z",'
    '"confidence":0.9,"model":null,"model_confidence":0.0,"number":null,"number_confidence":0.0,'
    '"thumbnail_url":null,"number_also_on":[]},{"loco_id":"L00002","track_id":"T1","start_m":30.0,"end_m":41.0,'
    '"start_seen":true,"end_seen":true,"station":"T1-A","moving":true,"first_seen":"2026-03-02T09:00:00Z",'
    '"last_seen":"2026-03-02T10:00:00Z","confidence":0.9,"model":"TE33A","model_confidence":0.8,'
    '"number":"TE33A-2251","number_confidence":0.9,"thumbnail_url":"/api/thumbnails/abc",'
    '"number_also_on":[]}]'
)
# A snapshot's locomotive as written while Loco was a dataclass (asdict, times by isoformat).
OLD_SNAPSHOT_LOCO = {
    "loco_id": "L00002",
    "track_id": "T1",
    "start_m": 30.0,
    "end_m": 41.0,
    "start_seen": True,
    "end_seen": True,
    "station": "T1-A",
    "moving": True,
    "first_seen": "2026-03-02T09:00:00+00:00",
    "last_seen": "2026-03-02T10:00:00+00:00",
    "confidence": 0.9,
    "settled": [29.0, 40.0],
    "still_since": "2026-03-02T09:00:00+00:00",
    "length_m": None,
}


def _moving() -> Loco:
    """A locomotive on the move at a station, one end never seen with the other."""
    return factories.loco("L00002", "T1", 30.0, 41.0).model_copy(
        update={"station": "T1-A", "moving": True, "settled": (29.0, 40.0), "length_m": None}
    )


@pytest.fixture
def store(database_factory: DatabaseFactory) -> Iterator[StateStore]:
    url = database_factory()
    upgrade(url)
    engine = make_engine(url)
    yield StateStore(engine)
    engine.dispose()


def test_every_shape_of_a_locomotive_has_the_fields_declared_once() -> None:
    shown, kept = list(LocoBase.model_fields), list(LocoKept.model_fields)
    public = list(LocoPublic.model_fields)
    assert public[: len(shown)] == shown and set(public[len(shown) :]) == RECOGNISED
    assert list(Loco.model_fields) == [*kept, "settled"]
    columns = set(LocomotiveRow.__table__.columns.keys())  # type: ignore[attr-defined]
    assert columns == {*kept, "flow", "present", "settled_start_m", "settled_end_m"}


def test_a_locomotive_comes_back_from_its_row_unchanged(store: StateStore) -> None:
    loco = _moving()
    row = to_row(loco, "dev")
    assert (row.flow, row.present, row.settled_start_m, row.settled_end_m) == ("dev", True, 29.0, 40.0)
    assert from_row(row) == loco
    dev = StateStore(store.engine, "dev")
    dev.save(NOW, [loco, factories.loco("L00001", "T1", 14.0, 22.5)], [])
    assert sorted(StateStore(store.engine, "dev").present(), key=lambda lo: lo.loco_id) == [
        factories.loco("L00001", "T1", 14.0, 22.5),
        loco,
    ]


def test_a_locomotive_comes_back_from_a_snapshot_unchanged(store: StateStore) -> None:
    loco = _moving()
    store.snapshot(NOW, [TrackState("T1", (loco,), ((0.0, 3.5),))])
    past = store.past(NOW + timedelta(seconds=1), timedelta(seconds=25))
    assert past is not None and past.locos == [loco]


def test_a_snapshot_written_before_the_fields_were_shared_still_loads(store: StateStore) -> None:
    with Session(store.engine) as session:
        state = [{"track_id": "T1", "unknown": [], "locos": [OLD_SNAPSHOT_LOCO]}]
        session.add(SnapshotRow(flow="prod", at=NOW, state=json.loads(json.dumps(state))))
        session.commit()
    past = store.past(NOW + timedelta(seconds=1), timedelta(seconds=25))
    assert past is not None and past.locos == [_moving()]


def test_the_api_shows_a_locomotive_as_it_always_did(facility: Facility) -> None:
    identities = Identities()
    identities.restore(
        [
            IdentityRow(
                loco_id="L00002",
                series="TE33A",
                series_confidence=0.8,
                plate="TE33A-2251",
                plate_confidence=0.9,
                thumbnail_id="abc",
                updated_at=NOW,
            )
        ]
    )
    locos = (factories.loco("L00001", "T1", 14.0, 22.5), _moving())
    [track] = tracks_public(facility, [TrackState("T1", locos, ())], identities)
    assert "[" + ",".join(loco.model_dump_json() for loco in track.locos) + "]" == SHOWN
    from_rows = [
        LocoPublic.model_validate(to_row(loco), from_attributes=True).identified(identities.get(loco.loco_id))
        for loco in locos
    ]
    assert from_rows == track.locos


def test_the_migrated_locomotives_table_is_the_one_the_row_describes(store: StateStore) -> None:
    # The row derives from LocoKept, so it is not one of SQLModel's direct subclasses (which the schema
    # test of tests/cloud/test_ingest.py compares): compared here.

    def include(_object: object, name: str | None, kind: str, _reflected: bool, _other: object) -> bool:
        return kind != "table" or name == LocomotiveRow.__tablename__

    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include})
        assert compare_metadata(context, SQLModel.metadata) == []
