"""Real database faults for tests: backends terminated by the server, and a TCP proxy in front
of PostgreSQL that can lose a reply after the server acted on it.

Armed with a marker (bytes of a statement's SQL, or b"COMMIT"), the proxy passes the next client
message containing the marker on to the server, then drops the connection as the server's
reply arrives, before any of it reaches the client. PostgreSQL sends a reply when the
statement is done (it buffers its output until then), so what the statement did is done and,
for an autocommit statement or a COMMIT, committed; the client sees only its connection die.
That is the one case a retry after a disconnect must get right: "it did commit".
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

import psycopg
from sqlalchemy.engine import make_url

_CHUNK = 65536


def terminate_backends(database_url: str, pids: Iterable[int]) -> None:
    """Terminate these server processes and wait (up to 5 s each) until they are gone, as
    after a restart. ``database_url``: any database of the cluster, as a superuser."""
    admin_url = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(admin_url.render_as_string(hide_password=False), autocommit=True) as admin:
        for pid in pids:
            done = admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()
            assert done == (True,), f"backend {pid} was not terminated"


class CuttingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self.cuts = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()

    def url(self, database_url: str) -> str:
        """The same database, reached through the proxy."""
        proxied = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return proxied.render_as_string(hide_password=False)

    def arm(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._marker is not None

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            lose_reply = threading.Event()
            threading.Thread(
                target=self._up, args=(client, server, lose_reply), daemon=True
            ).start()
            threading.Thread(
                target=self._down, args=(server, client, lose_reply), daemon=True
            ).start()

    def _up(
        self, client: socket.socket, server: socket.socket, lose_reply: threading.Event
    ) -> None:
        while data := _recv(client):
            with self._lock:
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    lose_reply.set()
            if not _send(server, data):
                break
        _close(client, server)

    def _down(
        self, server: socket.socket, client: socket.socket, lose_reply: threading.Event
    ) -> None:
        while data := _recv(server):
            if lose_reply.is_set():
                with self._lock:
                    self.cuts += 1
                break  # the server has acted; the client never hears of it
            if not _send(client, data):
                break
        _close(client, server)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(_CHUNK)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            sock.close()


@contextmanager
def cutting_proxy(database_url: str) -> Iterator[CuttingProxy]:
    parsed = make_url(database_url)
    proxy = CuttingProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    try:
        yield proxy
    finally:
        proxy.close()
