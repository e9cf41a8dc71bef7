"""Unit tests for payment_service.safeurls.addresses: public addresses and numeric hosts."""

from __future__ import annotations

import socket
from ipaddress import ip_address

import pytest

from payment_service.safeurls import (
    is_public_address,
    parse_numeric_host,
)

PUBLIC_V4 = "93.184.216.34"

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
