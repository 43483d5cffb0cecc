"""The node's worker threads: each unit owns one and starts, stops and joins it; a loop that crashes
is logged here, and the node's health then reports its thread as stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def logged_thread(name: str, loop: Callable[[], None], node_id: str) -> threading.Thread:
    """A daemon thread (not started) that runs `loop` and logs the exception that ends it, if any."""

    def run() -> None:
        try:
            loop()
        except Exception:
            log.exception("edge node %s: %s crashed", node_id, name)

    return threading.Thread(target=run, name=name, daemon=True)
