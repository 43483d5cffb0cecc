"""Telling a supervisor that a service is ready: systemd's notify protocol (sd_notify(3)).

A supervisor (systemd with `Type=notify`, or the demo's) sets NOTIFY_SOCKET to a Unix datagram socket
and waits for "READY=1" before starting what depends on the service; without NOTIFY_SOCKET this does
nothing. A consumer says it once it is subscribed, so producers started after it lose nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)
ENV = "NOTIFY_SOCKET"


def notify_ready() -> None:
    """Send READY=1 to the supervisor's socket, if one is set; a failure is logged, never raised."""
    address = os.environ.get(ENV)
    if not address:
        return
    # A leading "@" names a socket in the abstract namespace (sd_notify(3)).
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"READY=1", target)
    except OSError as exc:
        log.warning("could not tell the supervisor at %s that this service is ready: %s", address, exc)
