"""Unit tests for payment_service.safeurls.targets: where a callback may connect."""

from __future__ import annotations

import inspect
import socket
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest

from payment_service.safeurls import (
    UrlNotAllowed,
    check_callback_target,
    check_callback_url,
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
