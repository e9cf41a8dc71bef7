"""Unit tests for payment_service.safeurls: URL allowlists and callback address checks."""

from __future__ import annotations

import inspect
import socket
import unicodedata
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest

from payment_service.safeurls import (
    MAX_URL_LENGTH,
    UrlNotAllowed,
    check_callback_target,
    check_callback_url,
    check_url,
    is_public_address,
    normalize_origin,
    parse_numeric_host,
    url_host_port,
)

PUBLIC_V4 = "93.184.216.34"


class FakeResolver:
    """A getaddrinfo stand-in: maps names to addresses and records every call."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int, Any]] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        self.calls.append((host, port, kwargs.get("type")))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos: list[Any] = []
        for text in self.table[host]:
            if ip_address(text).version == 4:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (text, port)))
            else:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (text, port, 0, 0)))
        return infos


def make_resolver() -> FakeResolver:
    return FakeResolver(
        {
            "ok.example": [PUBLIC_V4, "2606:4700::1111"],
            "api.ok.example": [PUBLIC_V4],
            "rebind.example": ["10.0.0.5"],
            "mixed.example": [PUBLIC_V4, "10.0.0.5"],
            "mapped.example": ["::ffff:169.254.169.254"],
            "nat64.example": ["64:ff9b::a9fe:a9fe"],
            "localhost": ["127.0.0.1"],
            "dev.localhost": ["127.0.0.1"],
            "xn--bcher-kva.example": [PUBLIC_V4],
            "empty.example": [],
        }
    )


# --------------------------------------------------------------------------------------------
# normalize_origin
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("HTTPS://Ok.Example:443/", "https://ok.example"),
        ("https://ok.example", "https://ok.example"),
        ("https://ok.example/", "https://ok.example"),
        ("http://a.example:80", "http://a.example"),
        ("http://a.example:443", "http://a.example:443"),
        ("https://a.example:80", "https://a.example:80"),
        ("https://a.example:8443", "https://a.example:8443"),
        ("https://a.example:08443", "https://a.example:8443"),
        ("https://Bücher.example", "https://xn--bcher-kva.example"),
        ("https://BÜCHER.example", "https://xn--bcher-kva.example"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("https://[2606:4700:0:0:0:0:0:1111]/", "https://[2606:4700::1111]"),
        ("https://[::FFFF:127.0.0.1]", "https://[::ffff:7f00:1]"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://2130706433", "http://127.0.0.1"),
        ("http://0x7f.1:8000", "http://127.0.0.1:8000"),
        ("https://under_score.example", "https://under_score.example"),
    ],
)
def test_normalize_origin(value: str, expected: str) -> None:
    assert normalize_origin(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ok.example",
        "//ok.example",
        "ftp://ok.example",
        "javascript://ok.example",
        "https://",
        "https:///",
        "https://ok.example/path",
        "https://ok.example//",
        "https://ok.example?q=1",
        "https://ok.example/?q=1",
        "https://ok.example#f",
        "https://user@ok.example",
        "https://user:pw@ok.example",
        "https://ok.example:",
        "https://ok.example:0",
        "https://ok.example:65536",
        "https://ok.example:-1",
        "https://ok.example:https",
        "https://ok.example:443:443",
        "https://ok.example.",
        "https://ok..example",
        "https://-ok.example",
        "https://ok.example\\",
        "https:\\\\ok.example",
        " https://ok.example",
        "https://ok.example ",
        "https://ok.example\n",
        "https://ok\texample",
        "https://ok\u200b.example",
        "https://ok%2eexample",
        "https://ok.example\u3002evil",
        "https://straße.example",
        "https://::1",
        "https://[::1",
        "https://[::1]x",
        "https://[fe80::1%25eth0]",
        "https://[127.0.0.1]",
        "https://1.2.3.4.5",
        "https://256.0.0.1",
        "https://0x1g.0.0.1",
        "https://ok.123",
    ],
)
def test_normalize_origin_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        normalize_origin(value)


def test_normalize_origin_refuses_overlong_value() -> None:
    with pytest.raises(ValueError, match="longer than"):
        normalize_origin("https://" + "a" * MAX_URL_LENGTH + ".example")


# --------------------------------------------------------------------------------------------
# check_url
# --------------------------------------------------------------------------------------------

ALLOWED = ["https://ok.example"]


@pytest.mark.parametrize(
    "url",
    [
        "https://ok.example/",
        "https://ok.example",
        "https://OK.EXAMPLE:443/path?q=1#f",
        "HTTPS://ok.example/x",
        "https://ok.example/events/evt_42/register?payment=success",
        "https://ok.example?x=1",
        "https://ok.example#frag",
        "https://ok.example/@evil.example",
        "https://ok.example/?next=https://evil.example",
        "https://ok.example/собитие",
        "https://ok.example:0443/",
    ],
)
def test_check_url_allows_exact_origin(url: str) -> None:
    assert check_url(url, allowed_origins=ALLOWED, allow_http=False) == url


@pytest.mark.parametrize(
    "url",
    [
        # user information tricks
        "https://ok.example@evil.example",
        "https://ok.example@evil.example/",
        "https://ok.example:443@evil.example/",
        "https://user:pw@ok.example/",
        "https://@ok.example/",
        # not absolute / wrong scheme
        "//evil.example/x",
        "//ok.example/x",
        "/relative/path",
        "ok.example/path",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:text/html;base64,PHNjcmlwdD4=",
        "ftp://ok.example/",
        "https:ok.example/",
        "https:/ok.example/",
        "https:///ok.example/",
        # look-alike hosts
        "https://ok.example.evil.com/",
        "https://evil-ok.example/",
        "https://ok.example.",
        "https://ok.example./",
        "https://sub.ok.example/",
        "https://οk.example/",  # Greek omicron
        "https://ｏｋ.example/",  # full-width letters
        "https://ok。example/",  # ideographic full stop
        "https://ok%2eexample/",
        # port and scheme must match exactly
        "https://ok.example:8443/",
        "https://ok.example:80/",
        "https://ok.example:/",
        "https://ok.example:99999/",
        "http://ok.example/",
        "http://ok.example:443/",
        # backslashes, whitespace and control characters
        "https:\\\\evil.example",
        "https:\\\\ok.example",
        "https://evil.example\\@ok.example",
        "https://evil.example\\.ok.example/",
        "https://ok.example/\\evil.example",
        " https://ok.example/",
        "https://ok.example/ ",
        "https://ok.example/\n",
        "https://ok.example/\r\nX-Injected: 1",
        "https://ok.exa\tmple/",
        "\x00https://ok.example/",
        "https://ok.example/\x7f",
        "https://ok.example/\u202e",
        "https://ok.example/\u00a0",
        'https://ok.example/"onmouseover="x',
        "https://ok.example/<script>",
        # empty or malformed hosts
        "",
        "https://",
        "https:///",
        "https://:443/",
        "https://[::1]/",
        "https://[::1/",
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        check_url(url, allowed_origins=ALLOWED, allow_http=False)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://ok.example@evil.example/", "user information"),
        ("https://user:pw@ok.example/", "user information"),
        ("//evil.example/x", "absolute"),
        ("https:ok.example/", "absolute"),
        ("https:/ok.example/", "absolute"),
        ("javascript:alert(1)", "scheme 'javascript' is not allowed"),
        ("data:text/html,hi", "scheme 'data' is not allowed"),
        ("http://ok.example/", "must use https"),
        ("https:\\\\evil.example", "backslashes"),
        ("https://evil.example\\@ok.example", "backslashes"),
        ("https://ok.example/\t", "whitespace"),
        ("https:///ok.example/", "no host"),
        ("https://ok.example:8443/", "not one of the allowed origins"),
        ("https://ok.example.evil.com/", "not one of the allowed origins"),
        ("https://ok.example:99999/", "port is out of range"),
        ("https://straße.example/", "internationalised"),
    ],
)
def test_check_url_explains_why(url: str, reason: str) -> None:
    with pytest.raises(UrlNotAllowed) as info:
        check_url(url, allowed_origins=ALLOWED, allow_http=False)
    assert reason in str(info.value)


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_character_is_judged_as_the_unicode_rule_judges_it(code: int) -> None:
    """ASCII URLs take a one-regex fast path; the per-character rule (whitespace, control and
    format characters, backslash, quotes, angle brackets, backtick) decides the rest."""
    char = chr(code)
    refused_by_rule = (
        char in '\\"<>`' or char.isspace() or unicodedata.category(char) in {"Cc", "Cf", "Zs"}
    )
    url = f"https://ok.example/a{char}b"
    if refused_by_rule:
        with pytest.raises(UrlNotAllowed, match="whitespace, control characters"):
            check_url(url, allowed_origins=ALLOWED, allow_http=False)
    else:
        assert check_url(url, allowed_origins=ALLOWED, allow_http=False) == url


def test_check_url_refuses_overlong_url() -> None:
    prefix = "https://ok.example/"
    at_limit = prefix + "a" * (MAX_URL_LENGTH - len(prefix))
    assert check_url(at_limit, allowed_origins=ALLOWED, allow_http=False) == at_limit
    with pytest.raises(UrlNotAllowed, match="longer than"):
        check_url(at_limit + "a", allowed_origins=ALLOWED, allow_http=False)


def test_check_url_http_needs_allow_http_and_an_http_origin() -> None:
    origins = ["http://ok.example", "https://ok.example"]
    url = "http://ok.example/return"
    assert check_url(url, allowed_origins=origins, allow_http=True) == url
    assert check_url("http://ok.example:80/", allowed_origins=origins, allow_http=True)
    with pytest.raises(UrlNotAllowed, match="https"):
        check_url(url, allowed_origins=origins, allow_http=False)
    # allow_http does not turn an https-only allowlist into an http one.
    with pytest.raises(UrlNotAllowed, match="not one of the allowed origins"):
        check_url(url, allowed_origins=["https://ok.example"], allow_http=True)


def test_check_url_normalizes_the_allowlist() -> None:
    origins = ["HTTPS://OK.Example:443/", "https://Bücher.example", "https://a.example:8443"]
    assert check_url("https://ok.example/x", allowed_origins=origins, allow_http=False)
    assert check_url("https://xn--bcher-kva.example/", allowed_origins=origins, allow_http=False)
    assert check_url("https://BÜCHER.example/", allowed_origins=origins, allow_http=False)
    assert check_url("https://a.example:8443/x", allowed_origins=origins, allow_http=False)
    with pytest.raises(UrlNotAllowed):
        check_url("https://a.example/x", allowed_origins=origins, allow_http=False)


def test_check_url_ipv6_and_numeric_hosts_compare_canonically() -> None:
    origins = ["https://[2606:4700::1111]", "http://127.0.0.1:8000"]
    url = "https://[2606:4700:0::1111]/x"
    assert check_url(url, allowed_origins=origins, allow_http=False) == url
    assert check_url("http://2130706433:8000/", allowed_origins=origins, allow_http=True)
    with pytest.raises(UrlNotAllowed):
        check_url("http://127.0.0.2:8000/", allowed_origins=origins, allow_http=True)


def test_check_url_ignores_invalid_allowlist_entries() -> None:
    origins = ["not an origin", "https://ok.example/with/path", "https://ok.example"]
    assert check_url("https://ok.example/", allowed_origins=origins, allow_http=False)
    with pytest.raises(UrlNotAllowed):
        check_url("https://ok.example/", allowed_origins=origins[:2], allow_http=False)


def test_check_url_with_empty_allowlist_refuses_everything() -> None:
    with pytest.raises(UrlNotAllowed, match="not one of the allowed origins"):
        check_url("https://ok.example/", allowed_origins=[], allow_http=False)


def test_check_url_rejects_a_bare_string_allowlist() -> None:
    with pytest.raises(TypeError):
        check_url("https://ok.example/", allowed_origins="https://ok.example", allow_http=False)


def test_check_url_accepts_any_iterable() -> None:
    origins = (o for o in ["https://ok.example"])
    assert check_url("https://ok.example/", allowed_origins=origins, allow_http=False)


def test_url_not_allowed_is_a_value_error_with_a_message() -> None:
    with pytest.raises(ValueError, match="not one of the allowed origins") as info:
        check_url("https://evil.example/", allowed_origins=ALLOWED, allow_http=False)
    assert isinstance(info.value, UrlNotAllowed)
    assert "https://evil.example" in str(info.value)


# --------------------------------------------------------------------------------------------
# url_host_port
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://OK.example/x", ("ok.example", 443)),
        ("http://ok.example/x", ("ok.example", 80)),
        ("https://ok.example:8443/x", ("ok.example", 8443)),
        ("https://[2606:4700::1111]:8443/", ("2606:4700::1111", 8443)),
        ("https://Bücher.example/", ("xn--bcher-kva.example", 443)),
        ("http://0x7f.1/", ("127.0.0.1", 80)),
    ],
)
def test_url_host_port(url: str, expected: tuple[str, int]) -> None:
    assert url_host_port(url) == expected


def test_url_host_port_refuses_userinfo() -> None:
    with pytest.raises(UrlNotAllowed):
        url_host_port("https://ok.example@evil.example/")


# --------------------------------------------------------------------------------------------
# is_public_address
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "198.18.0.1",
        "198.19.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "::",
        "::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "ff0e::1",
        "2001:db8::1",
        "3fff::1",
        "100::1",
        "5f00::1",
        # IPv6 forms embedding a non-public IPv4
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::a00:1",
        "::ffff:0:7f00:1",
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
        "2002:a00:1::",
        "2002:a9fe:a9fe::1",
        # always refused: Teredo and local-use NAT64
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001::5db8:d822",
        "64:ff9b:1::5db8:d822",
        "64:ff9b:1:5db8:d822::",
    ],
)
def test_is_public_address_false(address: str) -> None:
    assert is_public_address(ip_address(address)) is False


@pytest.mark.parametrize(
    "address",
    [
        PUBLIC_V4,
        "1.1.1.1",
        "8.8.8.8",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.254",
        "2606:4700::1111",
        "2a00:1450:4001:81c::200e",
        "64:ff9b::5db8:d822",
        "::ffff:93.184.216.34",
        "2002:5db8:d822::1",
    ],
)
def test_is_public_address_true(address: str) -> None:
    assert is_public_address(ip_address(address)) is True


# --------------------------------------------------------------------------------------------
# parse_numeric_host
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("93.184.216.34", PUBLIC_V4),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0000.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f.0x0.0.1", "127.0.0.1"),
        ("10.0x10203", "10.1.2.3"),
        ("169.254.43518", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("0x00000000000007f000001", "127.0.0.1"),
        ("4294967295", "255.255.255.255"),
        ("127.0.0.1.", "127.0.0.1"),
        ("1.2.3.", "1.2.0.3"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("[64:ff9b::a00:1]", "64:ff9b::a00:1"),
    ],
)
def test_parse_numeric_host(host: str, expected: str) -> None:
    assert parse_numeric_host(host) == ip_address(expected)


@pytest.mark.parametrize(
    "host",
    [
        "ok.example",
        "localhost",
        "",
        ".",
        "1.2.3.4.5",
        "4294967296",
        "256.0.0.1",
        "1.256.0.1",
        "1.2.65536",
        "1.16777216",
        "08.0.0.1",
        "0x1g",
        "1..1",
        "-1",
        "+1",
        "1e3",
        "١٢٧.0.0.1",
        "1" * 5000,
        "0x7f.example",
        "[127.0.0.1]",
        "[::1",
        "::1::2",
        "127.0.0.1:80",
    ],
)
def test_parse_numeric_host_returns_none(host: str) -> None:
    assert parse_numeric_host(host) is None


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "127.0.1", "0x7f.1", PUBLIC_V4]
)
def test_parse_numeric_host_agrees_with_inet_aton(host: str) -> None:
    # libc's inet_aton is where the legacy spellings come from (POSIX: a, a.b, a.b.c, with
    # octal and hex parts); every libc has it, and it never touches the network.
    assert parse_numeric_host(host) == ip_address(socket.inet_aton(host))


# --------------------------------------------------------------------------------------------
# check_callback_target
# --------------------------------------------------------------------------------------------

REFUSED_CALLBACK_HOSTS = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "::1",
    "[::1]",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "64:ff9b::a00:1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::1",
    "2002:a00:1::",
    "fe80::1",
    "fc00::1",
    "224.0.0.1",
    "240.0.0.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
    "0x7f.1",
    "localhost",
    "LOCALHOST",
    "localhost.",
    "foo.localhost",
    "printer.local",
    "metadata.google.internal",
    "router.home.arpa",
    "intranet",
]


@pytest.mark.parametrize("host", REFUSED_CALLBACK_HOSTS)
def test_check_callback_target_refuses_private_hosts(host: str) -> None:
    resolver = make_resolver()
    with pytest.raises(UrlNotAllowed):
        check_callback_target(host, 443, allow_private=False, resolve=resolver)
    assert resolver.calls == []  # refused before any DNS query


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (PUBLIC_V4, [IPv4Address(PUBLIC_V4)]),
        ("2606:4700::1111", [IPv6Address("2606:4700::1111")]),
        ("[2606:4700::1111]", [IPv6Address("2606:4700::1111")]),
        ("64:ff9b::5db8:d822", [IPv6Address("64:ff9b::5db8:d822")]),
        ("1572395042", [IPv4Address(PUBLIC_V4)]),
    ],
)
def test_check_callback_target_allows_public_numeric_hosts(
    host: str, expected: list[IPv4Address | IPv6Address]
) -> None:
    resolver = make_resolver()
    assert check_callback_target(host, 443, allow_private=False, resolve=resolver) == expected
    assert resolver.calls == []


def test_check_callback_target_resolves_names_and_returns_every_address() -> None:
    resolver = make_resolver()
    addresses = check_callback_target("ok.example", 8443, allow_private=False, resolve=resolver)
    assert addresses == [IPv4Address(PUBLIC_V4), IPv6Address("2606:4700::1111")]
    assert resolver.calls == [("ok.example", 8443, socket.SOCK_STREAM)]


def test_check_callback_target_normalizes_the_name_before_resolving() -> None:
    resolver = make_resolver()
    check_callback_target("OK.Example", 443, allow_private=False, resolve=resolver)
    check_callback_target("Bücher.example", 443, allow_private=False, resolve=resolver)
    assert [call[0] for call in resolver.calls] == ["ok.example", "xn--bcher-kva.example"]


@pytest.mark.parametrize(
    "host", ["rebind.example", "mixed.example", "mapped.example", "nat64.example"]
)
def test_check_callback_target_refuses_names_resolving_to_private_addresses(host: str) -> None:
    resolver = make_resolver()
    with pytest.raises(UrlNotAllowed, match="resolves to a private address") as info:
        check_callback_target(host, 443, allow_private=False, resolve=resolver)
    message = str(info.value)
    for leaked in ("10.0.0.5", "169.254", "a9fe", "ff9b"):
        assert leaked not in message


@pytest.mark.parametrize("host", ["nxdomain.example", "empty.example"])
def test_check_callback_target_refuses_unresolvable_hosts(host: str) -> None:
    with pytest.raises(UrlNotAllowed, match="host does not resolve"):
        check_callback_target(host, 443, allow_private=False, resolve=make_resolver())


@pytest.mark.parametrize("error", [OSError("boom"), UnicodeError("label too long")])
def test_check_callback_target_treats_resolver_errors_as_unresolvable(error: Exception) -> None:
    def failing(*args: Any, **kwargs: Any) -> list[Any]:
        raise error

    with pytest.raises(UrlNotAllowed, match="host does not resolve"):
        check_callback_target("ok.example", 443, allow_private=False, resolve=failing)


def test_check_callback_target_refuses_garbage_from_the_resolver() -> None:
    def weird(*args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("not-an-ip", 443))]

    with pytest.raises(UrlNotAllowed, match="does not resolve"):
        check_callback_target("ok.example", 443, allow_private=False, resolve=weird)


def test_check_callback_target_deduplicates_addresses() -> None:
    resolver = FakeResolver({"dup.example": [PUBLIC_V4, PUBLIC_V4]})
    assert check_callback_target("dup.example", 443, allow_private=False, resolve=resolver) == [
        IPv4Address(PUBLIC_V4)
    ]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", [IPv4Address("127.0.0.1")]),
        ("2130706433", [IPv4Address("127.0.0.1")]),
        ("::1", [IPv6Address("::1")]),
        ("localhost", [IPv4Address("127.0.0.1")]),
        ("dev.localhost", [IPv4Address("127.0.0.1")]),
        ("rebind.example", [IPv4Address("10.0.0.5")]),
    ],
)
def test_check_callback_target_allow_private(
    host: str, expected: list[IPv4Address | IPv6Address]
) -> None:
    resolver = make_resolver()
    assert check_callback_target(host, 8000, allow_private=True, resolve=resolver) == expected


def test_check_callback_target_allow_private_still_needs_resolution() -> None:
    with pytest.raises(UrlNotAllowed, match="host does not resolve"):
        check_callback_target("nxdomain.example", 443, allow_private=True, resolve=make_resolver())


@pytest.mark.parametrize("port", [0, -1, 65536, True])
def test_check_callback_target_refuses_bad_ports(port: int) -> None:
    with pytest.raises(UrlNotAllowed, match="port"):
        check_callback_target(PUBLIC_V4, port, allow_private=False, resolve=make_resolver())


@pytest.mark.parametrize(
    "host", ["", "ok example", "ok.example\n", "[127.0.0.1]", "1.2.3.4:80", "ok..example"]
)
def test_check_callback_target_refuses_malformed_hosts(host: str) -> None:
    resolver = make_resolver()
    with pytest.raises(UrlNotAllowed):
        check_callback_target(host, 443, allow_private=True, resolve=resolver)
    assert resolver.calls == []


def test_default_resolver_is_getaddrinfo() -> None:
    for function in (check_callback_target, check_callback_url):
        default = inspect.signature(function).parameters["resolve"].default
        assert default is socket.getaddrinfo
    # A numeric host needs no DNS, so the default resolver works offline.
    assert check_callback_target(PUBLIC_V4, 443, allow_private=False) == [IPv4Address(PUBLIC_V4)]
    with pytest.raises(UrlNotAllowed, match="private address"):
        check_callback_target("127.0.0.1", 443, allow_private=False)


# --------------------------------------------------------------------------------------------
# check_callback_url
# --------------------------------------------------------------------------------------------

CALLBACK_ORIGINS = [
    "https://ok.example",
    "https://rebind.example",
    "https://localhost:8443",
    "https://127.0.0.1",
    "http://127.0.0.1:8000",
]


def test_check_callback_url_allows_public_target() -> None:
    resolver = make_resolver()
    url = "https://ok.example/hooks/ticket-payments"
    result = check_callback_url(
        url,
        allowed_origins=CALLBACK_ORIGINS,
        allow_http=False,
        allow_private=False,
        resolve=resolver,
    )
    assert result == url
    assert resolver.calls == [("ok.example", 443, socket.SOCK_STREAM)]


@pytest.mark.parametrize(
    "url",
    [
        "https://rebind.example/hook",
        "https://localhost:8443/hook",
        "https://127.0.0.1/hook",
        "https://2130706433/hook",
        "https://0x7f.1/hook",
    ],
)
def test_check_callback_url_refuses_private_targets_on_allowed_origins(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        check_callback_url(
            url,
            allowed_origins=CALLBACK_ORIGINS,
            allow_http=False,
            allow_private=False,
            resolve=make_resolver(),
        )


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/hook",
        "https://ok.example@evil.example/hook",
        "http://ok.example/hook",
        "https://ok.example:8443/hook",
    ],
)
def test_check_callback_url_checks_the_origin_before_resolving(url: str) -> None:
    resolver = make_resolver()
    with pytest.raises(UrlNotAllowed):
        check_callback_url(
            url,
            allowed_origins=CALLBACK_ORIGINS,
            allow_http=False,
            allow_private=True,
            resolve=resolver,
        )
    assert resolver.calls == []


def test_check_callback_url_allow_private_for_development() -> None:
    resolver = make_resolver()
    for url in ("http://127.0.0.1:8000/hook", "https://localhost:8443/hook"):
        assert (
            check_callback_url(
                url,
                allowed_origins=CALLBACK_ORIGINS,
                allow_http=True,
                allow_private=True,
                resolve=resolver,
            )
            == url
        )
    assert resolver.calls == [("localhost", 8443, socket.SOCK_STREAM)]


def test_check_callback_url_passes_the_explicit_port_to_the_resolver() -> None:
    resolver = make_resolver()
    check_callback_url(
        "https://api.ok.example:8443/hook",
        allowed_origins=["https://api.ok.example:8443"],
        allow_http=False,
        allow_private=False,
        resolve=resolver,
    )
    assert resolver.calls == [("api.ok.example", 8443, socket.SOCK_STREAM)]


def test_unresolved_ok_accepts_a_name_that_does_not_resolve_now():
    def failing(*_args, **_kwargs):
        raise socket.gaierror("no DNS")

    assert (
        check_callback_target(
            "hooks.example", 443, allow_private=False, resolve=failing, unresolved_ok=True
        )
        == []
    )
    with pytest.raises(UrlNotAllowed, match="does not resolve"):
        check_callback_target("hooks.example", 443, allow_private=False, resolve=failing)


def test_unresolved_ok_still_refuses_names_that_resolve_to_private_addresses():
    def private(host, port, **_kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port))]

    with pytest.raises(UrlNotAllowed):
        check_callback_target(
            "hooks.example", 443, allow_private=False, resolve=private, unresolved_ok=True
        )


def test_cached_resolver_answers_repeats_from_its_cache():
    from payment_service.safeurls import CachedResolver

    calls = []

    def counting(host, port, **_kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    resolver = CachedResolver(counting, ttl=60)
    assert resolver("a.example", 443) == resolver("a.example", 443)
    assert calls == ["a.example"]


def test_cached_resolver_gives_up_after_its_deadline():
    import threading

    from payment_service.safeurls import CachedResolver

    release = threading.Event()

    def hanging(host, port, **_kwargs):
        release.wait(5)
        return []

    resolver = CachedResolver(hanging, timeout=0.05)
    try:
        with pytest.raises(OSError):
            resolver("slow.example", 443)
        # unresolved_ok turns the timeout into "accept now, check at connection time"
        assert (
            check_callback_target(
                "slow.example", 443, allow_private=False, resolve=resolver, unresolved_ok=True
            )
            == []
        )
    finally:
        release.set()
