"""`depotwatch cloud recognise`: the recognition worker, a process of its own so it can be scaled
(MQTT 5 shared subscription), upgraded or switched off without touching the cloud service.

It takes every thumbnail of the site, recognises it and publishes a Recognition beside it (one per
flow whose models read it, see CloudConfig.reading_flows); the cloud's ingest votes. A thumbnail is
acknowledged to the broker once its Recognitions are handed to the client, so a worker that dies
leaves the rest for the next one.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cloud.config import CloudConfig
from cloud.readiness import notify_ready
from cloud.recognition.plate_ocr import PlateReader
from cloud.recognition.plate_rules import PlateRules
from cloud.recognition.recogniser import Recogniser
from cloud.recognition.series import SeriesClassifier
from shared.codec import decode_message, encode
from shared.errors import ContractError
from shared.messages import PROD_FLOW, Thumbnail
from shared.mqtt import Ack, MqttConnection
from shared.topics import Topic, TopicKind, shared_subscription, subscription

log = logging.getLogger(__name__)


@dataclass
class WorkerCounts:
    """What the worker did since start: readings, one per thumbnail and flow reading it."""

    recognised: int = 0
    rejected: int = 0
    malformed: int = 0


def load_fleet(path: Path | None) -> list[str]:
    """Known plate numbers, one per line (blank lines and # comments ignored)."""
    if path is None:
        return []
    lines = (line.split("#", 1)[0].strip().upper() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def build_recogniser(config: CloudConfig, flow: str = PROD_FLOW) -> Recogniser:
    """The models and rules that recognise a flow's thumbnails (fails at start on a missing model)."""
    rec = config.recognition
    models = config.recognition_models(flow)
    threads = rec.inference_threads
    return Recogniser(
        SeriesClassifier(
            models.series_model_dir, threshold=models.series_threshold, device=rec.device, threads=threads
        ),
        PlateReader(models.plate_model_dir, rec.device, threads),
        PlateRules(rec.plate_formats, load_fleet(rec.fleet_file)),
    )


# How often the worker looks whether its subscription is acknowledged, to say it is ready.
READY_POLL_S = 0.5


class RecognitionWorker:
    """Thumbnails in, Recognitions out."""

    def __init__(self, config: CloudConfig, site: str, recognisers: list[dict[str, Recogniser]]) -> None:
        """One thread per set of `recognisers` (each a Recogniser per flow with models of its own, and
        prod's, which serves the rest): an OpenVINO compiled model is not shared across threads here.
        Loads nothing and connects to nothing (`open` loads the models, `start` connects)."""
        if not recognisers or any(PROD_FLOW not in flows for flows in recognisers):
            raise ValueError("a recognition worker needs at least one set of recognisers, each with prod's")
        rec = config.recognition
        self.config = config
        self._recognisers: queue.Queue[dict[str, Recogniser]] = queue.Queue()
        for flows in recognisers:
            self._recognisers.put(flows)
        workers = len(recognisers)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="recognise")
        # At most this many thumbnails taken and not yet done; beyond, the MQTT handler waits.
        self._slots = threading.Semaphore(2 * workers)
        self.counts = WorkerCounts()
        self._counts_lock = threading.Lock()
        self.link = MqttConnection(config.broker, rec.client_id, clean_session=False)
        topic_filter = subscription(TopicKind.THUMBNAIL, site)
        if rec.shared_group and config.broker.protocol == "5":
            topic_filter = shared_subscription(rec.shared_group, topic_filter)
        self.link.subscribe_acking(topic_filter, self._on_thumbnail)

    @classmethod
    def open(cls, config: CloudConfig, site: str) -> RecognitionWorker:
        """A worker with `recognition.workers` sets of models loaded (fails on a missing model). Not
        started."""
        own = [PROD_FLOW] + [name for name, flow in config.flows.items() if flow.recognition is not None]
        sets = [
            {flow: build_recogniser(config, flow) for flow in own} for _ in range(config.recognition.workers)
        ]
        return cls(config, site, sets)

    def start(self) -> None:
        """Connect and take thumbnails."""
        self.link.start()

    def stop(self) -> None:
        """Finish the thumbnails taken, then disconnect."""
        self.link.stop(drain=lambda: self._pool.shutdown(wait=True))

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; tells a supervisor it is ready once subscribed (cloud.readiness)."""
        self.start()
        try:
            while not stop.is_set():
                if self.link.wait_subscribed(READY_POLL_S):
                    log.info("recognition: subscribed to the thumbnails; ready")
                    notify_ready()
                    break
            stop.wait()
        finally:
            self.stop()

    def _on_thumbnail(self, topic: str, payload: bytes, ack: Ack) -> None:
        try:
            parsed, thumbnail = decode_message(topic, payload)
            if not isinstance(thumbnail, Thumbnail):  # the topic picks the model: only a misrouting
                raise ContractError(f"a {type(thumbnail).__name__} on a thumbnail subscription")
        except ContractError as exc:
            self._count("malformed")
            log.warning("recognition: unusable thumbnail on %s: %s", topic, exc)
            ack()  # it will never become usable
            return
        self._slots.acquire()
        self._pool.submit(self._recognise, parsed, thumbnail, ack)

    def _recognise(self, parsed: Topic, thumbnail: Thumbnail, ack: Ack) -> None:
        recognisers = self._recognisers.get()
        try:
            published = True
            for flow in self.config.reading_flows(thumbnail.meta.flow):
                recognition = recognisers.get(flow, recognisers[PROD_FLOW]).recognise(thumbnail)
                recognition = recognition.model_copy(update={"flow": flow})
                self._count("rejected" if recognition.rejected else "recognised")
                if recognition.rejected:
                    log.info(
                        "recognition: thumbnail %s rejected by %s's models: %s",
                        thumbnail.meta.thumbnail_id,
                        flow,
                        recognition.rejected,
                    )
                out = Topic(TopicKind.RECOGNITION, parsed.site, parsed.node, flow=flow, camera=parsed.camera)
                if self.link.publish(str(out), encode(recognition)) is None:
                    # The broker is away: left unacknowledged, the thumbnail comes back, and a reading
                    # published already comes again (the cloud counts a thumbnail's once per flow).
                    published = False
                    break
            if published:
                ack()
        except Exception:
            log.exception("recognition: thumbnail %s failed", thumbnail.meta.thumbnail_id)
            ack()  # a bug for this picture; bringing it back would repeat it
        finally:
            self._recognisers.put(recognisers)
            self._slots.release()

    def _count(self, field: str) -> None:
        with self._counts_lock:
            setattr(self.counts, field, getattr(self.counts, field) + 1)
