"""API keys with roles. A key is shown once when created; only its SHA-256 is stored (keys are 32
random bytes, so a slow password hash buys nothing), found by its first characters."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud.db.models import ApiKeyRow

log = logging.getLogger(__name__)

PREFIX_LEN = 12
# While the database is away, a key verified this recently keeps its role.
OFFLINE_GRACE_S = 3600.0
# A key's lookup that takes longer than this counts as the database being away (a connection that
# went away mid-query answers nothing, and no request should wait on it).
LOOKUP_TIMEOUT_S = 2.0
# Lookups at once; beyond, they queue (and time out as above while the database hangs).
LOOKUP_THREADS = 4


class DatabaseUnavailable(Exception):
    """A key cannot be checked: the database is away and the key was not verified lately."""


class Role(StrEnum):
    """What a key may do; each role includes the ones below it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what `needed` requires."""
        order = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
        return order.index(self) >= order.index(needed)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, role: Role, name: str = "") -> str:
    """Store a new key and return it (the only time it is visible)."""
    key = "dw_" + secrets.token_urlsafe(32)
    with Session(engine) as session:
        session.add(
            ApiKeyRow(
                prefix=key[:PREFIX_LEN],
                key_hash=_hash(key),
                role=role.value,
                name=name,
                created_at=datetime.now(UTC),
            )
        )
        session.commit()
    return key


def role_of(engine: Engine, key: str) -> Role | None:
    """The role of a valid, unrevoked key; None otherwise."""
    with Session(engine) as session:
        row = session.exec(select(ApiKeyRow).where(ApiKeyRow.prefix == key[:PREFIX_LEN])).first()
    if row is None or row.revoked or not hmac.compare_digest(row.key_hash, _hash(key)):
        return None
    return Role(row.role)


def revoke_key(engine: Engine, prefix: str) -> bool:
    """Revoke the key starting with `prefix`; False when there is none."""
    with Session(engine) as session:
        row = session.exec(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix[:PREFIX_LEN])).first()
        if row is None:
            return False
        row.revoked = True
        session.add(row)
        session.commit()
    return True


class KeyRoles:
    """The role of a key, read from the database on every request (a revocation counts at once).
    While the database is away (or a lookup hangs beyond LOOKUP_TIMEOUT_S), a key verified within
    OFFLINE_GRACE_S keeps its role, so the live state stays readable through an outage; any other
    key raises DatabaseUnavailable. Owns the lookup threads: `close()` releases them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[Role, float]] = {}  # by key hash: only keys that were valid
        self._lookups = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="key-lookup")

    def close(self) -> None:
        """Release the lookup threads, cancelling the lookups still queued."""
        self._lookups.shutdown(wait=False, cancel_futures=True)

    def role(self, key: str, database_available: bool = True) -> Role | None:
        """The role of `key` (None if invalid or revoked), from the database; while it is away or the lookup
        fails, from the keys verified within OFFLINE_GRACE_S, raising DatabaseUnavailable for any other."""
        digest = _hash(key)
        if database_available:
            try:
                role = self._lookups.submit(role_of, self.engine, key).result(LOOKUP_TIMEOUT_S)
            except Exception as exc:  # the database went away (or hangs) before the watch noticed
                log.debug("key lookup failed (%s): answering from the keys verified lately", exc)
            else:
                with self._lock:
                    if role is None:
                        self._verified.pop(digest, None)
                    else:
                        self._verified[digest] = (role, time.monotonic())
                return role
        with self._lock:
            known = self._verified.get(digest)
        if known is not None and time.monotonic() - known[1] < OFFLINE_GRACE_S:
            return known[0]
        raise DatabaseUnavailable("the database is not reachable, so this key cannot be checked now")
