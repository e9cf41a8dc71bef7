"""One delivery attempt over the wire: a signed POST to the address the SSRF guard checked."""

from __future__ import annotations

import socket
import time
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

from payment_service.db import utcnow
from payment_service.safeurls import UrlNotAllowed, check_callback_target, url_host_port
from shared_contracts.signing import webhook_headers

SEND_TIMEOUT = 15.0  # CONTRACT §8
EXCERPT_BYTES = 2048  # how much of a platform's answer we keep, per attempt


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
    lookup of the name; Host and TLS SNI/certificate checks still use the name.
    """
    started_at, clock = utcnow(), time.perf_counter()
    status: int | None = None
    excerpt: str | None = None
    error: str | None = None
    try:
        host, port = url_host_port(outgoing.callback_url)
        addresses = check_callback_target(host, port, allow_private=allow_private, resolve=resolve)
        headers = webhook_headers(
            outgoing.secrets, outgoing.event_id, outgoing.body, request_id=outgoing.request_id
        )
        status, excerpt = _post_pinned(outgoing, host, port, addresses, headers, timeout)
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
    duration_ms = round((time.perf_counter() - clock) * 1000)
    return AttemptResult(started_at, duration_ms, status, error, excerpt)


def _post_pinned(
    outgoing: Outgoing,
    host: str,
    port: int,
    addresses: Sequence[IPv4Address | IPv6Address],
    headers: dict[str, str],
    timeout: float,
) -> tuple[int, str]:
    parts = urlsplit(outgoing.callback_url)
    https = parts.scheme.lower() == "https"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    name = f"[{host}]" if ":" in host else host
    default_port = 443 if https else 80
    headers = {**headers, "Host": name if port == default_port else f"{name}:{port}"}
    last_error: Exception | None = None
    for address in addresses:  # the next checked address only if this one cannot be reached
        pool = _pool(str(address), port, host if https else None, timeout)
        try:
            response = pool.urlopen(
                "POST", target, body=outgoing.body, headers=headers, redirect=False,
                retries=False, assert_same_host=False, preload_content=False,
            )  # fmt: skip
            try:
                raw = response.read(EXCERPT_BYTES, decode_content=False) or b""
            finally:
                response.close()  # never read the rest: a platform may answer with a lot
            return response.status, raw[:EXCERPT_BYTES].decode("utf-8", errors="replace")
        except (NewConnectionError, ConnectTimeoutError) as exc:
            last_error = exc
        finally:
            pool.close()
    assert last_error is not None
    raise last_error


def _pool(
    address: str, port: int, tls_name: str | None, timeout: float
) -> urllib3.HTTPConnectionPool:
    limits = urllib3.Timeout(total=timeout)
    if tls_name is None:
        return urllib3.HTTPConnectionPool(address, port, timeout=limits, maxsize=1)
    return urllib3.HTTPSConnectionPool(
        address, port, timeout=limits, maxsize=1, cert_reqs="CERT_REQUIRED",
        ca_certs=DEFAULT_CA_BUNDLE_PATH, server_hostname=tls_name, assert_hostname=tls_name,
    )  # fmt: skip
