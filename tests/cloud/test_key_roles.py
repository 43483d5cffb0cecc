"""API keys and KeyRoles on a real SQLite database, no HTTP: the key's format and what is stored of it,
a lookup on every call, the offline grace and its bound, a lookup that hangs, and the lookup threads
(how many at once, their names, what `close()` does to the lookups still queued)."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud import auth
from cloud.auth import (
    LOOKUP_THREADS,
    OFFLINE_GRACE_S,
    PREFIX_LEN,
    DatabaseUnavailable,
    KeyRoles,
    Role,
    create_key,
    revoke_key,
    role_of,
)
from cloud.db.engine import open_database
from cloud.db.models import ApiKeyRow
from tests.conftest import DatabaseFactory

UNAVAILABLE = "the database is not reachable, so this key cannot be checked now"
# How long a hanging lookup of these tests hangs at most (they release it sooner): far beyond the
# lookup timeout they set, so a KeyRoles that waited on it would be seen waiting.
HANG_S = 3.0


@pytest.fixture(scope="module")
def engine(database_factory: DatabaseFactory) -> Iterator[Engine]:
    e = open_database(database_factory())
    yield e
    e.dispose()


@pytest.fixture
def roles(engine: Engine) -> Iterator[KeyRoles]:
    keys = KeyRoles(engine)
    yield keys
    keys.close()


def stored(engine: Engine, key: str) -> ApiKeyRow:
    with Session(engine) as session:
        return session.exec(select(ApiKeyRow).where(ApiKeyRow.prefix == key[:PREFIX_LEN])).one()


class HangingLookups:
    """Stands in for the database lookup: each call blocks until released (or HANG_S), counting the
    calls, the most at once and the threads they ran on; then answers `answer`."""

    def __init__(self, answer: Role | None) -> None:
        self.answer = answer
        self.release = threading.Event()
        self.calls = 0
        self.active = 0
        self.most = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, _engine: Engine, _key: str) -> Role | None:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.most = max(self.most, self.active)
            self.threads.add(threading.current_thread().name)
        self.release.wait(HANG_S)
        with self._lock:
            self.active -= 1
        return self.answer

    def wait_for(self, active: int) -> None:
        deadline = time.monotonic() + HANG_S
        while self.active < active:
            assert time.monotonic() < deadline, f"{self.active} lookups running, {active} expected"
            time.sleep(0.01)


@pytest.fixture
def hanging(monkeypatch: pytest.MonkeyPatch) -> Iterator[HangingLookups]:
    lookups = HangingLookups(Role.VIEWER)
    monkeypatch.setattr(auth, "role_of", lookups)
    yield lookups
    lookups.release.set()


def in_threads(call: Callable[[], object], n: int) -> tuple[list[threading.Thread], list[object]]:
    """`call` run in n threads; each one's result (or exception) is appended as it ends."""
    outcomes: list[object] = []

    def one() -> None:
        try:
            outcomes.append(call())
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_a_key_is_dw_and_43_url_safe_characters_of_which_only_the_hash_is_stored(engine: Engine) -> None:
    """token_urlsafe(32): 32 random bytes are 43 base64url characters."""
    key = create_key(engine, Role.OPERATOR, "yard tablet")
    assert re.fullmatch(r"dw_[A-Za-z0-9_-]{43}", key), key
    row = stored(engine, key)
    assert (row.prefix, row.key_hash, row.role, row.name, row.revoked) == (
        key[:PREFIX_LEN],
        hashlib.sha256(key.encode()).hexdigest(),
        "operator",
        "yard tablet",
        False,
    )
    assert role_of(engine, key) == Role.OPERATOR
    assert create_key(engine, Role.OPERATOR, "yard tablet") != key


def test_a_key_created_without_a_name_has_an_empty_one(engine: Engine) -> None:
    assert stored(engine, create_key(engine, Role.VIEWER)).name == ""


def test_every_call_reads_the_database(engine: Engine, roles: KeyRoles) -> None:
    key = create_key(engine, Role.ADMIN, "every call")
    assert roles.role(key) == Role.ADMIN  # the database is taken to be there unless told otherwise
    assert revoke_key(engine, key[:PREFIX_LEN])
    assert roles.role(key) is None
    assert roles.role("dw_" + "x" * 43) is None


def test_offline_a_key_keeps_its_role_for_less_than_the_grace_since_verified(
    engine: Engine, roles: KeyRoles, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth, "time", SimpleNamespace(monotonic=lambda: now[0]))
    key = create_key(engine, Role.OPERATOR, "grace")
    assert roles.role(key) == Role.OPERATOR  # verified at 1000
    now[0] = 1000.0 + OFFLINE_GRACE_S - 0.5
    assert roles.role(key, database_available=False) == Role.OPERATOR
    now[0] = 1000.0 + OFFLINE_GRACE_S
    with pytest.raises(DatabaseUnavailable) as raised:
        roles.role(key, database_available=False)
    assert str(raised.value) == UNAVAILABLE
    now[0] = 2000.0
    assert roles.role(key) == Role.OPERATOR  # verified again: a new grace from 2000
    now[0] = 2000.0 + OFFLINE_GRACE_S - 0.5
    assert roles.role(key, database_available=False) == Role.OPERATOR


def test_offline_a_key_never_verified_or_found_invalid_cannot_be_checked(
    engine: Engine, roles: KeyRoles
) -> None:
    with pytest.raises(DatabaseUnavailable, match=f"^{UNAVAILABLE}$"):
        roles.role(create_key(engine, Role.ADMIN, "never seen"), database_available=False)
    revoked = create_key(engine, Role.ADMIN, "revoked")
    assert roles.role(revoked) == Role.ADMIN
    revoke_key(engine, revoked[:PREFIX_LEN])
    assert roles.role(revoked) is None  # forgotten: no grace for it
    with pytest.raises(DatabaseUnavailable, match=f"^{UNAVAILABLE}$"):
        roles.role(revoked, database_available=False)


def test_a_lookup_that_fails_is_logged_with_its_reason_and_falls_back_to_the_verified_keys(
    engine: Engine, roles: KeyRoles, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database went away before the watch noticed: the lookup raises, the key verified before
    keeps its role, and the log says why the answer came from memory."""
    key = create_key(engine, Role.OPERATOR, "verified")
    assert roles.role(key) == Role.OPERATOR

    def fails(*_: object) -> Role | None:
        raise ConnectionError("server closed the connection")

    monkeypatch.setattr(auth, "role_of", fails)
    with caplog.at_level("DEBUG", logger="cloud.auth"):
        assert roles.role(key) == Role.OPERATOR
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "cloud.auth",
            "DEBUG",
            "key lookup failed (server closed the connection): answering from the keys verified lately",
        )
    ]


def test_a_lookup_that_hangs_past_the_timeout_falls_back_to_the_verified_keys(
    engine: Engine, roles: KeyRoles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database hangs (HANG_S) rather than failing; each call gives up at LOOKUP_TIMEOUT_S, here
    0.2 s: a verified key keeps its role, another cannot be checked."""
    verified, unseen = create_key(engine, Role.VIEWER, "verified"), create_key(engine, Role.VIEWER, "unseen")
    assert roles.role(verified) == Role.VIEWER
    monkeypatch.setattr(auth, "LOOKUP_TIMEOUT_S", 0.2)
    lookups = HangingLookups(None)  # were the answer waited for, it would be "no such key"
    monkeypatch.setattr(auth, "role_of", lookups)
    try:
        started = time.monotonic()
        assert roles.role(verified) == Role.VIEWER
        with pytest.raises(DatabaseUnavailable, match=f"^{UNAVAILABLE}$"):
            roles.role(unseen)
        assert time.monotonic() - started < HANG_S / 2
    finally:
        lookups.release.set()


def test_four_lookups_run_at_once_on_named_threads_and_the_rest_queue(
    roles: KeyRoles, hanging: HangingLookups, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "LOOKUP_TIMEOUT_S", 2 * HANG_S)
    threads, outcomes = in_threads(lambda: roles.role("dw_" + "q" * 43), LOOKUP_THREADS + 2)
    hanging.wait_for(LOOKUP_THREADS)
    time.sleep(0.2)  # time for a fifth to start, were there a fifth thread
    assert (hanging.most, hanging.calls, outcomes) == (LOOKUP_THREADS, LOOKUP_THREADS, [])
    hanging.release.set()
    for thread in threads:
        thread.join(HANG_S)
    assert outcomes == [Role.VIEWER] * (LOOKUP_THREADS + 2) and hanging.calls == LOOKUP_THREADS + 2
    assert hanging.threads and all(name.startswith("key-lookup_") for name in hanging.threads), (
        hanging.threads
    )


def test_close_returns_at_once_and_cancels_the_queued_lookups(
    roles: KeyRoles, hanging: HangingLookups, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The callers of the queued lookups get their answer from the cache at once (here: none, so the
    key cannot be checked); those of the running ones still get the database's."""
    monkeypatch.setattr(auth, "LOOKUP_TIMEOUT_S", 2 * HANG_S)
    threads, outcomes = in_threads(lambda: roles.role("dw_" + "c" * 43), LOOKUP_THREADS + 2)
    hanging.wait_for(LOOKUP_THREADS)
    started = time.monotonic()
    roles.close()
    assert time.monotonic() - started < HANG_S / 2  # not waiting on the hanging lookups
    deadline = time.monotonic() + HANG_S / 2
    while len(outcomes) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [type(o) for o in outcomes] == [DatabaseUnavailable] * 2
    hanging.release.set()
    for thread in threads:
        thread.join(HANG_S)
    assert outcomes[2:] == [Role.VIEWER] * LOOKUP_THREADS and hanging.calls == LOOKUP_THREADS
    assert roles.role("dw_" + "c" * 43) == Role.VIEWER  # closed: no lookup, the cache still answers
