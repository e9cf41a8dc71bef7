"""Which network addresses are public, and how numeric hosts are read (as browsers read them)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

_DIGITS = frozenset("0123456789")
_OCTAL_DIGITS = frozenset("01234567")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

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
