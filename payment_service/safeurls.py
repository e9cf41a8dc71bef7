"""Decide which merchant URLs we accept and which network addresses a callback may reach."""

from __future__ import annotations

import encodings.idna
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

__all__ = [
    "MAX_URL_LENGTH",
    "UrlNotAllowed",
    "check_callback_target",
    "check_callback_url",
    "check_url",
    "is_public_address",
    "normalize_origin",
    "parse_numeric_host",
    "url_host_port",
]

MAX_URL_LENGTH = 2048

_DEFAULT_PORTS = {"http": 80, "https": 443}

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_PORT_RE = re.compile(r"[0-9]+")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?")
_DIGITS = frozenset("0123456789")
_OCTAL_DIGITS = frozenset("01234567")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

# Characters that never belong in a URL we accept, even though some parsers tolerate them:
# backslashes (browsers read them as "/"), quotes and angle brackets (markup injection).
_FORBIDDEN_CHARS = frozenset('\\"<>`')
# Unicode categories refused anywhere in a URL: controls, format characters (bidi overrides,
# zero-width joiners), surrogates, private use, and every kind of separator/space.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"})
# Dots that IDNA processing (and browsers) treat as label separators.
_UNICODE_DOTS = frozenset("\u3002\uff0e\uff61")

# Names that only mean something inside a network; refused for callbacks unless private
# callbacks are allowed. A name matches when it equals a suffix or ends with "." + suffix.
_LOCAL_NAME_SUFFIXES = ("localhost", "localdomain", "local", "internal", "home.arpa")

_NON_PUBLIC_V4 = tuple(
    IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", includes the unspecified address
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata lives here)
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes the limited broadcast 255.255.255.255
    )
)

# IPv6 is judged by allowlist: only global unicast (2000::/3) can be public, minus these.
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_NON_PUBLIC_V6 = tuple(
    IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments (Teredo, benchmarking, ORCHID, ...)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4 (judged by its embedded IPv4 before this list is consulted)
        "3fff::/20",  # documentation (RFC 9637)
    )
)

# IPv6 ranges that carry an IPv4 address in their low 32 bits.
_V4_MAPPED = IPv6Network("::ffff:0:0/96")
_V4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")  # SIIT (RFC 2765)
_V4_COMPATIBLE = IPv6Network("::/96")  # deprecated, includes :: and ::1
_NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215): the IPv4 position depends on the operator's prefix length and
# the range is not globally reachable, so every address in it is refused.
_NAT64_LOCAL_USE = IPv6Network("64:ff9b:1::/48")
_TEREDO = IPv6Network("2001::/32")


class UrlNotAllowed(ValueError):
    """A merchant-supplied URL or callback target was refused.

    The message is safe to show to the merchant: it never contains resolved addresses.
    """


# --------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------


def _is_public_v4(ip: IPv4Address) -> bool:
    if any(ip in net for net in _NON_PUBLIC_V4):
        return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    ) and bool(ip.is_global)


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 transition form routes to, if it is one of those forms."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    for net in (_V4_MAPPED, _V4_TRANSLATED, _NAT64_WELL_KNOWN, _V4_COMPATIBLE):
        if ip in net:
            return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPv4Address | IPv6Address) -> bool:
    """Whether a callback may connect to ``ip`` when private callbacks are not allowed.

    IPv6 forms that embed an IPv4 address (mapped, compatible, SIIT, NAT64, 6to4) are judged
    by that IPv4 address; Teredo and local-use NAT64 are always refused.
    """
    if isinstance(ip, IPv4Address):
        return _is_public_v4(ip)
    if ip in _TEREDO or ip in _NAT64_LOCAL_USE:
        return False
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return _is_public_v4(embedded)
    if ip not in _GLOBAL_UNICAST_V6 or any(ip in net for net in _NON_PUBLIC_V6):
        return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_site_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    ) and bool(ip.is_global)


def _parse_inet_aton_part(part: str) -> int | None:
    """One dot-separated part as inet_aton reads it: 0x.. hex, 0.. octal, else decimal."""
    if part[:2] in ("0x", "0X"):
        digits, base, alphabet = part[2:], 16, _HEX_DIGITS
    elif len(part) > 1 and part[0] == "0":
        digits, base, alphabet = part[1:], 8, _OCTAL_DIGITS
    else:
        digits, base, alphabet = part, 10, _DIGITS
    if base == 10 and not digits:
        return None
    if not all(c in alphabet for c in digits):
        return None
    significant = digits.lstrip("0")
    if len(significant) > 11:  # far beyond 32 bits in any base; avoids huge int parsing
        return None
    return int(significant, base) if significant else 0


def parse_numeric_host(host: str) -> IPv4Address | IPv6Address | None:
    """The address a numeric host spelling denotes, or None for an ordinary host name.

    Besides dotted-quad and IPv6 literals (bracketed or not), this accepts every spelling
    that inet_aton/getaddrinfo accept: ``2130706433``, ``0x7f000001``, ``0177.0.0.1``,
    ``127.1``, ``127.0.1``, ``0x7f.1``. A single trailing dot is ignored, as browsers do.
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if "." in host and ":" not in host:
            return None
    if ":" in host:
        try:
            return IPv6Address(host)
        except ValueError:
            return None
    if host.endswith("."):
        host = host[:-1]
    parts = host.split(".")
    if not host or len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _parse_inet_aton_part(part)
        if value is None:
            return None
        values.append(value)
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = 0
    for value in head:
        number = number * 256 + value
    return IPv4Address(number * 256 ** (5 - len(values)) + last)


# --------------------------------------------------------------------------------------------
# URLs and origins
# --------------------------------------------------------------------------------------------


# The ASCII characters _check_characters refuses: controls, space, DEL and _FORBIDDEN_CHARS.
_FORBIDDEN_ASCII_RE = re.compile(r'[\x00-\x20\x7f\\"<>`]')


def _check_characters(value: str, what: str) -> None:
    if value.isascii() and _FORBIDDEN_ASCII_RE.search(value) is None:
        return  # the usual URL: one scan in C instead of a category lookup per character
    for char in value:
        if (
            char in _FORBIDDEN_CHARS
            or char.isspace()
            or unicodedata.category(char) in _FORBIDDEN_CATEGORIES
        ):
            raise UrlNotAllowed(
                f"{what} must not contain whitespace, control characters, "
                'backslashes, quotes or "<", ">", "`"'
            )


def _idna_label(label: str) -> str:
    """ASCII form of one label; refuses labels whose IDNA 2003 mapping is not lossless.

    Browsers use UTS #46 and may map a label differently from Python's IDNA 2003 codec
    ("ß", final sigma, zero-width joiners, full-width letters). Accepting only labels that
    round-trip unchanged guarantees that we and the browser agree on the host.
    """
    try:
        encoded = encodings.idna.ToASCII(label).decode("ascii")
        decoded = encodings.idna.ToUnicode(encoded)
    except UnicodeError:
        raise UrlNotAllowed("host is not a valid internationalised domain name") from None
    if not encoded.startswith("xn--") or decoded != label.lower():
        raise UrlNotAllowed("host is not a valid internationalised domain name")
    return encoded


def _looks_numeric(label: str) -> bool:
    if label[:2] in ("0x", "0X"):
        return all(c in _HEX_DIGITS for c in label[2:])
    return bool(label) and all(c in _DIGITS for c in label)


def _normalize_hostname(host: str) -> str:
    """Lower-case ASCII form of a (non-bracketed) host; IPv4 spellings become dotted quads."""
    if not host:
        raise UrlNotAllowed("host is empty")
    if any(c in _UNICODE_DOTS for c in host):
        raise UrlNotAllowed("host is not a valid domain name")
    labels = host.split(".")
    if labels and _looks_numeric(labels[-1]):
        # Like browsers: a host whose last label is a number is an IPv4 address or invalid.
        ip = parse_numeric_host(host)
        if not isinstance(ip, IPv4Address):
            raise UrlNotAllowed("host is not a valid IPv4 address")
        return str(ip)
    ascii_labels = [label.lower() if label.isascii() else _idna_label(label) for label in labels]
    result = ".".join(ascii_labels)
    if len(result) > 253 or not all(_LABEL_RE.fullmatch(label) for label in ascii_labels):
        raise UrlNotAllowed("host is not a valid domain name")
    return result


def _split_authority(authority: str) -> tuple[str, int | None]:
    """(normalized host, explicit port or None) of ``host[:port]``; IPv6 keeps its brackets."""
    if "@" in authority:
        raise UrlNotAllowed("URL must not contain user information")
    if authority.startswith("["):
        end = authority.find("]")
        if end == -1:
            raise UrlNotAllowed("IPv6 host is missing its closing bracket")
        literal, rest = authority[1:end], authority[end + 1 :]
        if "%" in literal:
            raise UrlNotAllowed("IPv6 zone identifiers are not allowed")
        try:
            host = f"[{IPv6Address(literal).compressed}]"
        except ValueError:
            raise UrlNotAllowed("host is not a valid IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise UrlNotAllowed("unexpected characters after the IPv6 host")
        port_text = rest[1:] if rest else None
    else:
        if authority.count(":") > 1:
            raise UrlNotAllowed("IPv6 hosts must be written in brackets")
        name, sep, port_value = authority.partition(":")
        host = _normalize_hostname(name)
        port_text = port_value if sep else None
    if port_text is None:
        return host, None
    if not _PORT_RE.fullmatch(port_text):
        raise UrlNotAllowed("port is not a number")
    significant = port_text.lstrip("0")
    port = int(significant) if significant and len(significant) <= 5 else 0
    if not 1 <= port <= 65535:
        raise UrlNotAllowed("port is out of range")
    return host, port


def _format_origin(scheme: str, host: str, port: int | None) -> str:
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _parse_url(url: str) -> tuple[str, str, int | None]:
    """(lower-case scheme, normalized host, explicit port) of an absolute http(s) URL."""
    if not isinstance(url, str):
        raise UrlNotAllowed("URL must be a string")
    if not url:
        raise UrlNotAllowed("URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"URL is longer than {MAX_URL_LENGTH} characters")
    _check_characters(url, "URL")
    match = _SCHEME_RE.match(url)
    if match is None:
        raise UrlNotAllowed("URL must be absolute (start with https://)")
    scheme = match.group(1).lower()
    if scheme not in _DEFAULT_PORTS:
        raise UrlNotAllowed(f"URL scheme {scheme!r} is not allowed")
    rest = url[match.end() :]
    if not rest.startswith("//"):
        raise UrlNotAllowed("URL must be absolute (scheme://host/...)")
    authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
    if not authority:
        raise UrlNotAllowed("URL has no host")
    host, port = _split_authority(authority)
    return scheme, host, port


def normalize_origin(value: str) -> str:
    """Canonical ``scheme://host[:port]`` of an origin; raises ValueError if it is not one.

    The scheme and host are lower-cased, unicode hosts IDNA-encoded, IPv6 hosts bracketed
    and compressed, numeric IPv4 spellings turned into dotted quads, default ports dropped.
    Only ``scheme://host[:port]`` with an optional trailing "/" is accepted.
    """
    if not isinstance(value, str):
        raise UrlNotAllowed("origin must be a string")
    return _normalize_origin(value)


@lru_cache(maxsize=1024)  # a merchant's allowlist is normalised again on every check_url
def _normalize_origin(value: str) -> str:
    if len(value) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"origin is longer than {MAX_URL_LENGTH} characters")
    _check_characters(value, "origin")
    match = re.fullmatch(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)/?", value)
    if match is None:
        raise UrlNotAllowed("origin must be scheme://host[:port] without path, query or fragment")
    scheme = match.group(1).lower()
    if scheme not in _DEFAULT_PORTS:
        raise UrlNotAllowed("origin scheme must be http or https")
    if not match.group(2):
        raise UrlNotAllowed("origin has no host")
    host, port = _split_authority(match.group(2))
    return _format_origin(scheme, host, port)


def check_url(url: str, *, allowed_origins: Iterable[str], allow_http: bool) -> str:
    """Return ``url`` unchanged if its origin is exactly one of ``allowed_origins``.

    Raises UrlNotAllowed otherwise: not absolute, a scheme other than https (or http when
    ``allow_http``), user information, backslashes, whitespace or control characters, an
    invalid host or port, more than MAX_URL_LENGTH characters, or an origin not allowed.
    Entries of ``allowed_origins`` that are not valid origins never match anything.
    """
    if isinstance(allowed_origins, str):
        raise TypeError("allowed_origins must be an iterable of origins, not a string")
    scheme, host, port = _parse_url(url)
    if scheme == "http" and not allow_http:
        raise UrlNotAllowed("URL must use https")
    origin = _format_origin(scheme, host, port)
    allowed: set[str] = set()
    for candidate in allowed_origins:
        try:
            allowed.add(normalize_origin(candidate))
        except ValueError:
            continue
    if origin not in allowed:
        raise UrlNotAllowed(f"origin {origin} is not one of the allowed origins")
    return url


def url_host_port(url: str) -> tuple[str, int]:
    """(host, port) a URL connects to, parsed exactly as check_url parses it.

    The host is ASCII, lower-case, without IPv6 brackets; the port is explicit or the
    scheme's default. The callback dispatcher passes these to check_callback_target.
    """
    scheme, host, port = _parse_url(url)
    if host.startswith("["):
        host = host[1:-1]
    return host, _DEFAULT_PORTS[scheme] if port is None else port


# --------------------------------------------------------------------------------------------
# Callback targets
# --------------------------------------------------------------------------------------------


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
