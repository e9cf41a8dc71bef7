"""One delivery attempt over the wire: a signed POST to the address the SSRF guard checked."""

from __future__ import annotations

import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from urllib.parse import urlsplit

import urllib3
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)
from urllib3.exceptions import (
    TimeoutError as Urllib3Timeout,
)

from payment_service.callbacks.deadlines import Deadline, HTTPPool, HTTPSPool
from payment_service.db import utcnow
from payment_service.safeurls import UrlNotAllowed, check_callback_target, url_host_port
from shared_contracts.signing import webhook_headers

SEND_TIMEOUT = 15.0  # CONTRACT §8, for the whole attempt
EXCERPT_BYTES = 2048  # how much of a platform's answer we keep, per attempt
# CONTRACT §8: a 409, 410 or 422 with an error body refuses the event for good. Such an answer
# is read this far, so that a rejection whose body runs past the excerpt (a long message,
# large details) is still seen as one; nothing beyond the excerpt is stored.
REJECTED_CODES = frozenset({409, 410, 422})
REJECTION_BYTES = 64 * 1024
# C0 controls but tab, CR and LF, and DEL: PostgreSQL refuses NUL in text (the attempt would
# never be recorded), and none of them reads well where an operator looks at the answer.
_UNREADABLE = {code: "\ufffd" for code in (*range(0x20), 0x7F) if chr(code) not in "\t\r\n"}


@dataclass(frozen=True)
class Outgoing:
    """What one attempt sends; the secrets and body never reach a log or a repr."""

    event_id: str
    callback_url: str
    request_id: str | None
    body: bytes = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class AttemptResult:
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None  # safe to show the merchant: no resolved addresses
    response_excerpt: str | None = None
    # The whole answer (up to REJECTION_BYTES) of a 409/410/422, to tell a rejection; not stored.
    rejection_body: str | None = None

    @property
    def answer_body(self) -> str | None:
        """What is known of the answer's body: all of a possible rejection, else the excerpt."""
        return self.rejection_body if self.rejection_body is not None else self.response_excerpt


def send(
    outgoing: Outgoing,
    *,
    allow_private: bool,
    timeout: float = SEND_TIMEOUT,
    resolve: Callable[..., list[Any]] = socket.getaddrinfo,
) -> AttemptResult:
    """POST the event once, never following a redirect; every failure becomes a result.

    The host is resolved and checked here, at connection time (DNS may have changed since the
    checkout was created), and the connection goes to a checked address, never to a fresh
    lookup of the name; Host and TLS SNI/certificate checks still use the name. ``timeout``
    bounds the whole attempt, every address tried included; then it is a timeout failure.
    """
    started_at, clock = utcnow(), time.perf_counter()
    deadline = Deadline(timeout)
    status: int | None = None
    excerpt: str | None = None
    rejection_body: str | None = None
    error: str | None = None
    try:
        host, port = url_host_port(outgoing.callback_url)
        addresses = check_callback_target(host, port, allow_private=allow_private, resolve=resolve)
        headers = webhook_headers(
            outgoing.secrets, outgoing.event_id, outgoing.body, request_id=outgoing.request_id
        )
        with deadline.watching():
            status, excerpt, rejection_body = _post_pinned(
                outgoing, host, port, addresses, headers, deadline
            )
    except UrlNotAllowed as exc:
        error = f"refused: {exc}"
    except NewConnectionError:  # first: urllib3 derives it from its timeout error
        error = "connection failed"
    except (Urllib3Timeout, TimeoutError):
        error = f"timed out after {timeout:g} s"
    except SSLError:
        error = "TLS handshake or certificate check failed"
    except ProtocolError:
        error = "connection broken before a complete response"
    except HTTPError as exc:
        error = f"HTTP error: {type(exc).__name__}"
    except ValueError as exc:  # a merchant with no active secret, a malformed one
        error = f"cannot sign: {exc}"
    finally:
        cut_off = deadline.end()
    if cut_off:  # whatever the cut connection raised (EOF, a broken TLS record), or not
        status, excerpt, rejection_body = None, None, None
        error = f"timed out after {timeout:g} s"
    duration_ms = round((time.perf_counter() - clock) * 1000)
    return AttemptResult(started_at, duration_ms, status, error, excerpt, rejection_body)


def _post_pinned(
    outgoing: Outgoing,
    host: str,
    port: int,
    addresses: Sequence[IPv4Address | IPv6Address],
    headers: dict[str, str],
    deadline: Deadline,
) -> tuple[int, str, str | None]:
    """(status, excerpt, the body of a possible rejection) of the POST to the first checked
    address that can be reached."""
    parts = urlsplit(outgoing.callback_url)
    https = parts.scheme.lower() == "https"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    name = f"[{host}]" if ":" in host else host
    default_port = 443 if https else 80
    headers = {**headers, "Host": name if port == default_port else f"{name}:{port}"}
    last_error: Exception | None = None
    for address in addresses:  # the next checked address only if this one cannot be reached
        pool = _POOLS.get(str(address), port, host if https else None)
        left = deadline.left()  # bounds a connect, which the deadline's cut cannot interrupt
        try:
            response = pool.urlopen(
                "POST", target, body=outgoing.body, headers=headers, redirect=False,
                retries=False, assert_same_host=False, preload_content=False,
                timeout=urllib3.Timeout(connect=left, read=left),
            )  # fmt: skip
            limit = REJECTION_BYTES if response.status in REJECTED_CODES else EXCERPT_BYTES
            try:
                raw = response.read(limit, decode_content=False) or b""
            finally:
                # Read to its end, the answer has already handed its connection back for the
                # next attempt; else never read the rest (a platform may answer with a lot):
                # closing the answer closes its connection.
                response.close()
            text = raw[:EXCERPT_BYTES].decode("utf-8", errors="replace")
            whole = raw.decode("utf-8", errors="replace") if limit > EXCERPT_BYTES else None
            return response.status, text.translate(_UNREADABLE), whole
        except (NewConnectionError, ConnectTimeoutError) as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


_PoolKey = tuple[str, int, str | None]  # (address, port, TLS server name)


class _Pools:
    """Keep-alive connections, per checked address (and port and TLS name), for every thread.

    An attempt still resolves and checks the host, then takes a connection to one of the
    checked addresses: a kept connection goes where a new one would, to an address that passed
    the SSRF guard. Reusing it saves a TCP (and TLS) handshake per attempt on both sides.
    Connections to an address unused for `KEEP_IDLE_SECONDS` are closed (`close_idle`), before
    a platform's server would time them out itself."""

    def __init__(self, max_addresses: int = 64) -> None:
        self._pools: OrderedDict[_PoolKey, tuple[urllib3.HTTPConnectionPool, float]] = OrderedDict()
        self._max_addresses = max_addresses
        self._lock = threading.Lock()

    def get(self, address: str, port: int, tls_name: str | None) -> urllib3.HTTPConnectionPool:
        key = (address, port, tls_name)
        evicted: list[urllib3.HTTPConnectionPool] = []
        with self._lock:
            found = self._pools.pop(key, None)
            pool = found[0] if found else _new_pool(address, port, tls_name)
            self._pools[key] = (pool, time.monotonic())  # now the most recently used
            while len(self._pools) > self._max_addresses:
                evicted.append(self._pools.popitem(last=False)[1][0])
        for old in evicted:
            old.close()  # its idle connections; one in use is closed when handed back
        return pool

    def close_idle(self, max_idle: float) -> None:
        """Close the connections of every address unused for ``max_idle`` seconds."""
        cutoff = time.monotonic() - max_idle
        with self._lock:
            stale = [key for key, (_, used) in self._pools.items() if used < cutoff]
            closing = [self._pools.pop(key)[0] for key in stale]
        for pool in closing:
            pool.close()


def _new_pool(address: str, port: int, tls_name: str | None) -> urllib3.HTTPConnectionPool:
    # At most KEPT_PER_ADDRESS idle connections are kept; more concurrent attempts open more.
    if tls_name is None:
        return HTTPPool(address, port, maxsize=KEPT_PER_ADDRESS)
    return HTTPSPool(
        address, port, maxsize=KEPT_PER_ADDRESS, cert_reqs="CERT_REQUIRED",
        ca_certs=DEFAULT_CA_BUNDLE_PATH, server_hostname=tls_name, assert_hostname=tls_name,
    )  # fmt: skip


KEPT_PER_ADDRESS = 8  # the worker's default concurrency
# Below the keep-alive timeouts of common servers (gunicorn's default is 2 s), so a kept
# connection is rarely one the platform is closing at that moment.
KEEP_IDLE_SECONDS = 1.5
_POOLS = _Pools()


def close_idle_connections(max_idle: float = KEEP_IDLE_SECONDS) -> None:
    """Close kept connections unused for ``max_idle`` seconds (the worker calls this often)."""
    _POOLS.close_idle(max_idle)
