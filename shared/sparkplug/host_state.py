"""A Sparkplug host application's STATE (specification 3.0, "Host Application Session Establishment"):
UTF-8 JSON `{"online": <bool>, "timestamp": <UTC ms>}`, retained at QoS 1, the offline one being the
host's MQTT Will. The birth and the Will of one MQTT session carry the same timestamp, taken before the
CONNECT, so an edge node can tell a death of an older session (an earlier timestamp) from its own host's."""

from __future__ import annotations

import json
from dataclasses import dataclass

from shared.errors import MalformedPayload


@dataclass(frozen=True)
class HostState:
    """Whether the host is online, as of the session that began at `timestamp_ms`."""

    online: bool
    timestamp_ms: int

    def encode(self) -> bytes:
        """The JSON payload."""
        return json.dumps({"online": self.online, "timestamp": self.timestamp_ms}).encode()

    @classmethod
    def decode(cls, payload: bytes) -> HostState:
        """Parse a STATE payload; raises MalformedPayload saying what is wrong."""
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedPayload(f"STATE is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise MalformedPayload("STATE is not a JSON object")
        online, timestamp = data.get("online"), data.get("timestamp")
        if not isinstance(online, bool):
            raise MalformedPayload(f"STATE 'online' is {online!r}, not a boolean")
        if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
            raise MalformedPayload(f"STATE 'timestamp' is {timestamp!r}, not UTC milliseconds")
        return cls(online, timestamp)
