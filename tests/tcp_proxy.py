"""A TCP proxy a test puts between a client and a server to stage network faults.

- `forward`: bytes pass both ways.
- `reset`: every connection is reset (RST), and new ones are reset as they arrive.
- `blackhole`: connections are accepted and held, but not one byte passes either way, as when
  packets are dropped somewhere between (the client waits for an answer that never comes).
Switching back to `forward` lets held connections flow again.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from typing import Literal

Mode = Literal["forward", "reset", "blackhole"]
_POLL_S = 0.05


class TcpProxy:
    """Listens on a free local port; `url_port` is what the client connects to."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode: Mode = "forward"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> TcpProxy:
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for pair in self._pairs:
                for sock in pair:
                    _reset(sock)
        for thread in self._threads:
            thread.join(2)

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "reset":
            with self._lock:
                pairs, self._pairs = self._pairs, []
            for pair in pairs:
                for sock in pair:
                    _reset(sock)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], _POLL_S)
            if not ready:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "reset":
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._pairs.append((client, server))
            self._spawn(self._pump, client, server)

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        held: dict[socket.socket, bytes] = {}  # read after a switch away from forward: passed on later
        while not self._stop.is_set():
            # Held while blackholed, and while being reset: a connection on its way to an RST must
            # not pass on the bytes a blackhole held for it.
            if self.mode != "forward":
                self._stop.wait(_POLL_S)  # read nothing, send nothing: the bytes wait in the buffers
                continue
            try:
                for sock, data in held.items():
                    peers[sock].sendall(data)
                held.clear()
                ready, _, _ = select.select(list(peers), [], [], _POLL_S)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        raise OSError("closed")
                    # The mode may have changed while select waited: bytes read since are held.
                    if self.mode == "forward":
                        peers[sock].sendall(data)
                    else:
                        held[sock] = held.get(sock, b"") + data
            except (OSError, ValueError):
                for sock in peers:
                    _reset(sock)
                return


def _reset(sock: socket.socket) -> None:
    """Close with an RST (linger 0), as a dropped connection looks to the other side."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
