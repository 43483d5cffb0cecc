"""Property: whatever arrives beside them, valid detections are stored and given to the estimator, and
every message is handled and acknowledged without the ingest failing on any.

Hypothesis derives the junk from the contract's own models: a valid message of each kind the cloud
consumes, with one of its fields (`model_fields`) replaced by any JSON value (NaN, infinities, 2^70,
strings for numbers, nesting), removed, or joined by an unknown one, on its own topic or another
node's; plus truncated payloads and raw bytes. It goes through a real broker into the real ingest
and database, shuffled among valid detections of the layout's cameras.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from cloud.db.engine import make_engine, upgrade
from cloud.db.models import ObservationRow
from cloud.fse import Observation
from shared.codec import encode
from shared.layout import Facility
from shared.messages import Detection, Message, Thumbnail
from shared.topics import Topic, TopicKind
from tests import factories
from tests.cloud.test_ingest import Wired
from tests.waiting import wait_until

# Sequence numbers for the messages: fresh for every example (a replayed example is new traffic too).
_SEQS = itertools.count(int(datetime.now(UTC).timestamp() * 1000) * 1000)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


class Rig(Wired):
    """The ingest over a real broker, remembering every observation handed to the estimator."""

    def __init__(self, engine: Engine, mqtt_url: str, facility: Facility) -> None:
        super().__init__(engine, mqtt_url, facility)
        self.observed: set[tuple[str, datetime]] = set()
        fuse = self.ingest.observe
        assert fuse is not None

        def observe(flow: str, observation: Observation) -> bool | None:
            self.observed.add((observation.camera_id, observation.at))
            return fuse(flow, observation)

        self.ingest.observe = observe


@pytest.fixture(scope="module")
def rig(database_url: str, mqtt_url: str, facility: Facility) -> Iterator[Rig]:
    upgrade(database_url)
    engine = make_engine(database_url)
    r = Rig(engine, mqtt_url, facility)
    yield r
    r.stop()
    engine.dispose()


def _topic(site: str, message: Message, node: str | None = None) -> str:
    """The message's own topic, or (with `node`) the same under another node."""
    fields: Any = message.meta if isinstance(message, Thumbnail) else message
    kind = {
        "Detection": TopicKind.DETECTION,
        "Thumbnail": TopicKind.THUMBNAIL,
        "Recognition": TopicKind.RECOGNITION,
        "NodeLifecycle": TopicKind.NODE_STATE,
        "NodeStatus": TopicKind.NODE_STATUS,
        "CameraStatus": TopicKind.CAMERA_STATUS,
        "CommandAck": TopicKind.COMMAND_ACK,
    }[type(message).__name__]
    flow = (
        getattr(fields, "flow", None)
        if kind in (TopicKind.DETECTION, TopicKind.THUMBNAIL, TopicKind.RECOGNITION)
        else None
    )
    camera = getattr(fields, "camera_id", None) if kind is not TopicKind.NODE_STATE else None
    if kind in (TopicKind.NODE_STATUS, TopicKind.COMMAND_ACK):
        camera = None
    return str(Topic(kind, site, node or fields.node_id, flow=flow, camera=camera))


def _bases(facility: Facility, seq: int) -> list[Message]:
    """One valid message of every kind the cloud consumes (junk is made from these)."""
    now = datetime.now(UTC)
    view = facility.cameras["T2-C3"].view
    return [
        factories.detection_for(
            facility, "T2-C3", seq=seq, captured_at=now, extents=[factories.extent(view.start_m, view.end_m)]
        ),
        factories.thumbnail(captured_at=now),
        factories.recognition(captured_at=now),
        factories.node_birth(at=now),
        factories.node_status(at=now),
        factories.camera_status(at=now),
        factories.command_ack(at=now),
    ]


@st.composite
def junk(draw: st.DrawFn, facility: Facility) -> tuple[str, bytes]:
    base = draw(st.sampled_from(_bases(facility, next(_SEQS))))
    topic = _topic(facility.site, base, node=draw(st.sampled_from([None, None, "edge-bay2", "edge-ghost"])))
    how = draw(st.sampled_from(["replace", "replace", "remove", "add", "truncate", "bytes"]))
    if how == "bytes":
        return topic, draw(st.binary(max_size=300))
    payload = encode(base)
    if how == "truncate":
        return topic, payload[: draw(st.integers(0, max(len(payload) - 1, 0)))]
    model: type[BaseModel] = type(base.meta) if isinstance(base, Thumbnail) else type(base)
    field = draw(st.sampled_from(sorted(model.model_fields)))
    document = json.loads(base.meta.model_dump_json() if isinstance(base, Thumbnail) else payload)
    if how == "replace":
        document[field] = draw(JSON_VALUES)
    elif how == "remove":
        document.pop(field, None)
    else:
        document[draw(st.text(min_size=1, max_size=8))] = draw(JSON_VALUES)
    text = json.dumps(document, allow_nan=True).encode()
    if isinstance(base, Thumbnail):  # the meta inside a thumbnail frame, the JPEG as it was
        return topic, b"DWT1" + len(text).to_bytes(4, "big") + text + base.jpeg
    return topic, text


@st.composite
def valid_detections(draw: st.DrawFn, facility: Facility) -> list[Detection]:
    cameras = draw(st.lists(st.sampled_from(sorted(facility.cameras)), min_size=1, max_size=6))
    now = datetime.now(UTC)
    out = []
    for k, camera in enumerate(cameras):
        view = facility.cameras[camera].view
        a = draw(st.floats(view.start_m, view.end_m - 2.5))
        b = draw(st.floats(a + 2.0, view.end_m))
        out.append(
            factories.detection_for(
                facility,
                camera,
                seq=next(_SEQS),
                captured_at=now - timedelta(milliseconds=50 * (len(cameras) - k)),
                extents=[factories.extent(a, b)] if draw(st.booleans()) else [],
            )
        )
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_valid_detections_are_stored_and_fused_whatever_arrives_beside_them(
    rig: Rig, facility: Facility, data: st.DataObject
) -> None:
    valid = data.draw(valid_detections(facility))
    noise = data.draw(st.lists(junk(facility), min_size=1, max_size=12))
    messages = [(_topic(facility.site, d), encode(d)) for d in valid] + noise
    for topic, payload in data.draw(st.permutations(messages)):
        rig.publish(topic, payload)
    wait_until(rig.settled, 15, "every message handled and acknowledged")
    assert rig.ingest.counts.handler_errors == 0  # every refusal was a reason, never a failure
    assert rig.ingest.writer.alive
    with Session(rig.ingest.engine) as session:
        stored = set(
            session.exec(
                select(ObservationRow.observation_id).where(
                    col(ObservationRow.seq).in_([d.seq for d in valid])
                )
            ).all()
        )
    assert stored >= {str(d.observation_id) for d in valid}
    assert {(d.camera_id, d.captured_at) for d in valid} <= rig.observed
