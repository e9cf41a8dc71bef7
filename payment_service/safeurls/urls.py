"""Merchant URLs and origins: parsed strictly, normalised, and matched against allowlists."""

from __future__ import annotations

import encodings.idna
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address

from payment_service.safeurls.addresses import (
    _DIGITS,
    _HEX_DIGITS,
    UrlNotAllowed,
    parse_numeric_host,
)

MAX_URL_LENGTH = 2048

_DEFAULT_PORTS = {"http": 80, "https": 443}

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_PORT_RE = re.compile(r"[0-9]+")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?")

# Characters that never belong in a URL we accept, even though some parsers tolerate them:
# backslashes (browsers read them as "/"), quotes and angle brackets (markup injection).
_FORBIDDEN_CHARS = frozenset('\\"<>`')
# Unicode categories refused anywhere in a URL: controls, format characters (bidi overrides,
# zero-width joiners), surrogates, private use, and every kind of separator/space.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"})
# Dots that IDNA processing (and browsers) treat as label separators.
_UNICODE_DOTS = frozenset("\u3002\uff0e\uff61")


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


@lru_cache(maxsize=1024)  # a merchant's URLs share a few authorities; refusals are not cached
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
