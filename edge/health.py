"""What makes an edge node unhealthy, as plain functions of plain state (tested without a broker)."""

from __future__ import annotations

from shared.mqtt import LinkState

# How long a node that was connected may be without its broker before /healthz says so: longer than
# paho's first reconnect delays (1 + 2 + 4 s), so a broker restart does not flap the health check.
BROKER_GRACE_S = 10.0


def broker_problem(link: LinkState, grace_s: float = BROKER_GRACE_S) -> str | None:
    """One line naming the broker and the error when the link is a problem, else None: never connected
    and an attempt has failed, or disconnected (or never connected) for longer than `grace_s`."""
    if link.connected:
        return None
    down_s = link.down_for_s or 0.0
    if down_s <= grace_s and (link.ever_connected or link.failed_attempts == 0):
        return None
    if link.failed_attempts:
        plural = "" if link.failed_attempts == 1 else "s"
        why = f"{link.last_error} ({link.failed_attempts} failed attempt{plural}; see broker.url)"
    else:  # the attempt under way has neither failed nor been answered
        why = "no answer yet (see broker.url)"
    if link.ever_connected:
        return f"MQTT: disconnected from broker {link.url} for {down_s:.0f} s: {why}"
    return f"MQTT: never connected to broker {link.url} in {down_s:.0f} s: {why}"
