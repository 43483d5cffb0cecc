"""API keys with roles. A key is shown once when created; only its SHA-256 is stored (keys are 32
random bytes, so a slow password hash buys nothing), found by its first characters."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud.db.models import ApiKeyRow

PREFIX_LEN = 12


class Role(StrEnum):
    """What a key may do; each role includes the ones below it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
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
