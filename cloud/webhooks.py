"""Event webhooks: each configured receiver is sent its flow's events as signed JSON POSTs by a thread
of its own, so that a slow or dead receiver never slows the ingest, the estimator or another receiver.

The events are read back from the database, where the state writer (and the ingest, for the nodes'
lifecycle) stored them, after the webhook's cursor, itself kept in the database: delivery is at least
once across restarts and outages of either side. An event is POSTed until the receiver answers 2xx,
retried after waits that double up to `max_retry_s`, and the cursor passes it only then; events go one
at a time in the order stored, so a locomotive's events arrive in the order they happened. A receiver
tells a redelivery by the event's id (also in the X-Depotwatch-Event-Id header). An event still refused
`give_up_after_h` after its first attempt is given up (counted, logged, visible in the API) and the next
sent.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Engine

from cloud.api.schemas import EventPublic
from cloud.config import WebhookConfig
from cloud.db.failures import reason
from cloud.db.models import EventRow
from cloud.db.webhook_rows import events_after, identity_of, load_cursor, save_cursor
from shared.errors import ConfigIssue

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Depotwatch-Signature"
TIMESTAMP_HEADER = "X-Depotwatch-Timestamp"
EVENT_HEADER = "X-Depotwatch-Event-Id"
ATTEMPT_HEADER = "X-Depotwatch-Attempt"
USER_AGENT = "depotwatch-webhooks/1"
# Events read from the database at once, and how often it is looked at when nothing waits.
BATCH = 200
POLL_S = 0.5
# A gap in the event ids is a transaction not yet committed for this long at most; then a rolled back one.
GAP_WAIT_S = 30.0
# While the database is away, the sender looks again this often.
DATABASE_RETRY_S = 2.0
# A receiver's answer is kept (for the reason of a failure) up to this many bytes.
ANSWER_BYTES = 300


class WebhookEvent(EventPublic):
    """The body of one POST: an event as the API shows it, with its flow and, where it concerns a
    locomotive whose series or number has settled, those."""

    id: int
    flow: str
    series: str | None = None
    number: str | None = None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Depotwatch-Signature of a POST: `sha256=` and the hex HMAC-SHA256 of its timestamp (the
    X-Depotwatch-Timestamp, UNIX seconds), a dot and the body's bytes. Signing the time too lets a
    receiver refuse a captured request replayed later."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def wanted(hook: WebhookConfig, row: EventRow) -> bool:
    """Whether the webhook is sent this event (its kinds and tracks; events of no track always)."""
    if hook.kinds and row.kind not in hook.kinds:
        return False
    return not hook.tracks or not row.track_id or row.track_id in hook.tracks


def unknown_tracks(hooks: dict[str, WebhookConfig], tracks: set[str]) -> list[ConfigIssue]:
    """The webhooks' tracks that the layout does not have, as issues naming each key."""
    return [
        ConfigIssue(f"webhooks.{name}.tracks", f"{track!r} is not a track of the layout")
        for name, hook in hooks.items()
        for track in hook.tracks
        if track not in tracks
    ]


def shown_url(url: str) -> str:
    """A URL without the user name, password and query it may carry (a receiver's token often rides
    there), for logs and the API."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


@dataclass
class WebhookStatus:
    """What one webhook has done since start, and where it stands."""

    name: str
    url: str
    flow: str
    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    cursor: int | None = None  # the last event done with (None until read from the database)
    retrying: int | None = None  # the event being retried, if one is
    last_error: str = ""
    last_error_at: datetime | None = None
    last_delivered_at: datetime | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer other than 2xx: the POST is not followed (nor turned into a GET)."""

    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


class WebhookSender:
    """Delivers one webhook's events; `start` and `stop` its owned thread."""

    def __init__(self, name: str, config: WebhookConfig, engine: Engine) -> None:
        self.name = name
        self.config = config
        self.engine = engine
        self.status = WebhookStatus(name, shown_url(str(config.url)), config.flow)
        self._secret = config.secret.get_secret_value()
        self._opener = urllib.request.build_opener(_NoRedirects)
        self._stop = threading.Event()
        self._gap: tuple[int, float] | None = None  # an id found missing, and since when
        self._thread = threading.Thread(target=self._loop, name=f"webhook-{name}", daemon=True)

    def start(self) -> None:
        """Start the owned thread."""
        self._thread.start()

    def signal_stop(self) -> None:
        """Ask the thread to stop; a POST in flight ends first (within `timeout_s`)."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end."""
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("webhook %s: a POST still in flight at stop", self.name)

    @property
    def alive(self) -> bool:
        """Whether the owned thread runs."""
        return self._thread.is_alive()

    def _loop(self) -> None:
        cursor = self._cursor()
        while cursor is not None and not self._stop.is_set():
            try:
                cursor = self._pass(cursor)
            except Exception as exc:  # a bug here must cost a retry, never the thread
                log.exception("webhook %s: failed; retrying", self.name)
                self._failed(f"failed: {exc}")
                self._stop.wait(DATABASE_RETRY_S)

    def _pass(self, cursor: int) -> int | None:
        """Send what is stored after `cursor`; the new cursor, or None when stopping."""
        try:
            rows = events_after(self.engine, cursor, BATCH)
        except Exception as exc:
            self._failed(f"reading the events: {reason(exc)}")
            self._stop.wait(DATABASE_RETRY_S)
            return cursor
        rows = self._committed(cursor, rows)
        if not rows:
            self._stop.wait(POLL_S)
            return cursor
        for row in rows:
            mine = row.flow == self.config.flow and wanted(self.config, row)
            if mine and not self._deliver(row):
                return None  # stopping
            cursor = int(row.id or cursor)
            self.status.cursor = cursor
            if mine or row is rows[-1]:
                self._save_cursor(cursor)
        return cursor

    def _committed(self, cursor: int, rows: list[EventRow]) -> list[EventRow]:
        """The rows up to the first gap in the ids after `cursor`. Ids are drawn when a row is inserted
        and seen when its transaction commits, so with two writers (the state writer, the ingest's) a
        later id can be seen first: the gap is a transaction still open, waited for, unless it lasts
        GAP_WAIT_S (rolled back: PostgreSQL's sequence never gives its ids again)."""
        expected = cursor + 1
        for k, row in enumerate(rows):
            if row.id != expected:
                if self._gap is None or self._gap[0] != expected:
                    self._gap = (expected, time.monotonic())  # the timer is this missing id's own
                if time.monotonic() - self._gap[1] < GAP_WAIT_S:
                    return rows[:k]
                last = (row.id or 1) - 1
                log.info("webhook %s: events #%d-#%d never came (rolled back)", self.name, expected, last)
                expected = int(row.id or expected)
            expected += 1
        return rows

    def _cursor(self) -> int | None:
        while not self._stop.is_set():
            try:
                cursor = load_cursor(self.engine, self.name, datetime.now(UTC))
            except Exception as exc:
                self._failed(f"reading its cursor: {reason(exc)}")
                self._stop.wait(DATABASE_RETRY_S)
                continue
            self.status.cursor = cursor
            log.info(
                "webhook %s: sending %s events after #%d to %s",
                self.name,
                self.config.flow,
                cursor,
                self.status.url,
            )
            return cursor
        return None

    def _save_cursor(self, cursor: int) -> None:
        try:
            save_cursor(self.engine, self.name, cursor, datetime.now(UTC))
        except Exception as exc:
            # The next event delivered saves it; until then a restart sends a few events again.
            self._failed(f"saving its cursor: {reason(exc)}")

    def _deliver(self, row: EventRow) -> bool:
        """POST the event until it is taken or given up (True), or the sender stops (False)."""
        body = self._body(row)
        attempt = 0
        # Counted from the first attempt, not the event's time: a replayed flow's events happened long
        # ago, and an edge's backlog arrives late.
        since = time.monotonic()
        while not self._stop.is_set():
            attempt += 1
            failure = self._post(body, int(row.id or 0), attempt)
            if failure is None:
                self.status.delivered += 1
                self.status.retrying = None
                self.status.last_delivered_at = datetime.now(UTC)
                return True
            self.status.failed_attempts += 1
            self.status.retrying = row.id
            self._failed(f"event #{row.id} ({row.kind}), attempt {attempt}: {failure}")
            if time.monotonic() - since > self.config.give_up_after_h * 3600:
                self.status.given_up += 1
                self.status.retrying = None
                log.error(
                    "webhook %s: gave up event #%d (%s at %s) after %d attempts: %s",
                    self.name,
                    row.id,
                    row.kind,
                    row.at.isoformat(),
                    attempt,
                    failure,
                )
                return True
            doubled = self.config.first_retry_s * 2 ** min(attempt - 1, 30)
            self._stop.wait(min(self.config.max_retry_s, doubled))
        return False

    def _body(self, row: EventRow) -> bytes:
        series = number = None
        if row.loco_id is not None:
            try:
                series, number = identity_of(self.engine, row.loco_id)
            except Exception as exc:  # the event goes without them rather than wait
                log.warning("webhook %s: identity of %s not read: %s", self.name, row.loco_id, reason(exc))
        event = WebhookEvent.model_validate(
            row.model_dump() | {"id": row.id, "series": series, "number": number}
        )
        return event.model_dump_json().encode()

    def _post(self, body: bytes, event_id: int, attempt: int) -> str | None:
        """POST one body; None when answered 2xx, else why not."""
        # The URL is the config's AnyHttpUrl: http or https, never file: or another scheme.
        request = urllib.request.Request(  # noqa: S310
            str(self.config.url),
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                TIMESTAMP_HEADER: str(now := int(time.time())),
                SIGNATURE_HEADER: signature(self._secret, now, body),
                EVENT_HEADER: str(event_id),
                ATTEMPT_HEADER: str(attempt),
            },
        )
        try:
            with self._opener.open(request, timeout=self.config.timeout_s) as answer:
                answer.read(ANSWER_BYTES)
                return None
        except urllib.error.HTTPError as exc:
            text = exc.read(ANSWER_BYTES).decode(errors="replace").strip()
            return f"answered {exc.code} {exc.reason}" + (f": {text}" if text else "")
        except urllib.error.URLError as exc:
            return f"not reached: {exc.reason}"
        except TimeoutError:
            return f"no answer within {self.config.timeout_s:g} s"
        except (OSError, http.client.HTTPException) as exc:  # reset, or not HTTP at all
            return f"failed: {type(exc).__name__}: {exc}"

    def _failed(self, what: str) -> None:
        self.status.last_error = what
        self.status.last_error_at = datetime.now(UTC)
        log.warning("webhook %s: %s", self.name, what)


class Webhooks:
    """Every configured webhook's sender, started and stopped together."""

    def __init__(self, hooks: dict[str, WebhookConfig], engine: Engine) -> None:
        self.senders = [WebhookSender(name, hook, engine) for name, hook in hooks.items()]

    def start(self) -> None:
        """Start each sender's thread."""
        for sender in self.senders:
            sender.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every sender, waiting up to `timeout` in all for POSTs in flight."""
        for sender in self.senders:
            sender.signal_stop()
        deadline = time.monotonic() + timeout
        for sender in self.senders:
            sender.join(max(0.0, deadline - time.monotonic()))

    def statuses(self) -> list[WebhookStatus]:
        """Each webhook's status, in the config's order."""
        return [sender.status for sender in self.senders]
