"""A tiny TCP proxy standing in for a failover endpoint (ElastiCache's primary endpoint, a DNS name that
moves to the promoted replica): :meth:`Proxy.switch` points new connections at another port and cuts the
open ones, as a failover does. Used by the local failover test and ``bench/failover.py``."""

from __future__ import annotations

import contextlib
import socket
import threading


class Proxy:
    """Forward 127.0.0.1:``port`` to 127.0.0.1:``target``, one thread pair per connection."""

    def __init__(self, target: int) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._holding = threading.Event()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        """``redis://`` URL of the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    def switch(self, target: int) -> None:
        """Send new connections to ``target`` and close every open one (clients reconnect)."""
        with self._lock:
            self.target = target
            doomed = list(self._open)
            self._open.clear()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def hold(self) -> None:
        """Stop forwarding (bytes read from now on are dropped): a link that lags, then dies."""
        self._holding.set()

    def close(self) -> None:
        """Stop accepting and cut everything."""
        self._stopped = True
        with contextlib.suppress(OSError):
            self._server.close()
        self.switch(self.target)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):  # no Nagle delay: forward small replies at once, as Redis does
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self._holding.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
