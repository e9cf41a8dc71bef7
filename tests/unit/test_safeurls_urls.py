"""Unit tests for payment_service.safeurls.urls: origins, URL allowlists, host and port."""

from __future__ import annotations

import unicodedata

import pytest

from payment_service.safeurls import (
    MAX_URL_LENGTH,
    UrlNotAllowed,
    check_url,
    normalize_origin,
    url_host_port,
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
