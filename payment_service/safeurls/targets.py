"""Where a callback may connect: the host's addresses must all be public (unless allowed)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from payment_service.safeurls.addresses import UrlNotAllowed, is_public_address, parse_numeric_host
from payment_service.safeurls.urls import (
    _check_characters,
    _normalize_hostname,
    check_url,
    url_host_port,
)

# Names that only mean something inside a network; refused for callbacks unless private
# callbacks are allowed. A name matches when it equals a suffix or ends with "." + suffix.
_LOCAL_NAME_SUFFIXES = ("localhost", "localdomain", "local", "internal", "home.arpa")


def _is_local_name(host: str) -> bool:
    if "." not in host:  # single-label names resolve through site-specific search domains
        return True
    return any(host == suffix or host.endswith("." + suffix) for suffix in _LOCAL_NAME_SUFFIXES)


def check_callback_target(
    host: str,
    port: int,
    *,
    allow_private: bool,
    resolve: Callable[..., list[Any]] = socket.getaddrinfo,
    unresolved_ok: bool = False,
) -> list[IPv4Address | IPv6Address]:
    """Resolve ``host`` and return the addresses a callback may connect to.

    Numeric spellings are decoded without resolving; names are resolved with
    ``resolve(host, port, type=socket.SOCK_STREAM)``. Unless ``allow_private``, local names
    (localhost, *.local, *.internal, single labels, ...) are refused before resolving and
    the whole host is refused if ANY of its addresses is not public. The caller must connect
    only to the returned addresses, so that DNS cannot change between check and use.

    ``unresolved_ok`` (checkout creation): a name that does not resolve right now is accepted
    with no addresses, so that creating a checkout never depends on DNS; the dispatcher checks
    again, without it, when it connects.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UrlNotAllowed("callback port is out of range")
    if not isinstance(host, str) or not host:
        raise UrlNotAllowed("callback host is empty")
    _check_characters(host, "callback host")
    numeric = parse_numeric_host(host)
    if numeric is not None:
        if not allow_private and not is_public_address(numeric):
            raise UrlNotAllowed("callback host is a private address")
        return [numeric]
    if host.startswith("[") or ":" in host:
        raise UrlNotAllowed("callback host is not a valid address")
    name = _normalize_hostname(host)
    if not allow_private and _is_local_name(name):
        raise UrlNotAllowed("callback host is not a public host name")
    try:
        infos = resolve(name, port, type=socket.SOCK_STREAM)
    except OSError:
        if unresolved_ok:
            return []
        raise UrlNotAllowed("host does not resolve") from None
    except (UnicodeError, ValueError):
        raise UrlNotAllowed("host does not resolve") from None
    addresses: list[IPv4Address | IPv6Address] = []
    for info in infos:
        try:
            address = ipaddress.ip_address(info[4][0])
        except (TypeError, ValueError, IndexError):
            raise UrlNotAllowed("host does not resolve to a usable address") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UrlNotAllowed("host does not resolve")
    if not allow_private and not all(is_public_address(a) for a in addresses):
        raise UrlNotAllowed("callback host resolves to a private address")
    return addresses


def check_callback_url(
    url: str,
    *,
    allowed_origins: Iterable[str],
    allow_http: bool,
    allow_private: bool,
    resolve: Callable[..., list[Any]] = socket.getaddrinfo,
    unresolved_ok: bool = False,
) -> str:
    """check_url, then check_callback_target on the URL's host and port; returns ``url``."""
    check_url(url, allowed_origins=allowed_origins, allow_http=allow_http)
    host, port = url_host_port(url)
    check_callback_target(
        host, port, allow_private=allow_private, resolve=resolve, unresolved_ok=unresolved_ok
    )
    return url


class CachedResolver:
    """getaddrinfo with a deadline and a short cache, for checks on a request's hot path.

    A lookup that takes longer than ``timeout`` raises ``socket.timeout`` (an OSError), so a
    caller using ``unresolved_ok`` accepts the name and leaves the final word to the check at
    connection time; the lookup itself finishes in the background. Answers are kept for
    ``ttl`` seconds: platforms send one callback host over and over.
    """

    def __init__(
        self,
        resolve: Callable[..., list[Any]] = socket.getaddrinfo,
        *,
        timeout: float = 0.5,
        ttl: float = 60.0,
        max_entries: int = 1024,
    ) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self._resolve = resolve
        self._timeout = timeout
        self._ttl = ttl
        self._max_entries = max_entries
        self._cache: dict[tuple[str, int], tuple[float, list[Any]]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolver")

    def __call__(self, host: str, port: int, **kwargs: Any) -> list[Any]:
        import time
        from concurrent.futures import TimeoutError as FutureTimeout

        now = time.monotonic()
        with self._lock:
            hit = self._cache.get((host, port))
        if hit is not None and hit[0] > now:
            return hit[1]
        future = self._pool.submit(self._resolve, host, port, **kwargs)
        try:
            answer = future.result(timeout=self._timeout)
        except FutureTimeout:
            raise TimeoutError(f"resolving {host} took longer than {self._timeout} s") from None
        with self._lock:
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            self._cache[(host, port)] = (now + self._ttl, answer)
        return answer
