"""Webhook signatures: the header format, and every way verification must refuse."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from payment_service.sandbox_psp.signature import (
    SandboxSignatureError,
    sign_webhook,
    verify_webhook,
)

SECRET = "sbx_whsec_unit"
BODY = b'{"id":"sbe_1","type":"payment.succeeded"}'
NOW = 1_800_000_000


def test_header_is_stripe_style_hmac_of_timestamp_dot_body() -> None:
    header = sign_webhook(SECRET, NOW, BODY)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)


def test_a_fresh_signature_verifies() -> None:
    verify_webhook(SECRET, sign_webhook(SECRET, NOW, BODY), BODY, now=NOW + 299)


def test_one_matching_signature_among_several_is_enough() -> None:
    good = sign_webhook(SECRET, NOW, BODY).split(",")[1]
    verify_webhook(SECRET, f"t={NOW},v1={'0' * 64},{good},v0=legacy", BODY, now=NOW)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        (SECRET, BODY + b" ", NOW),  # tampered body
        ("sbx_whsec_other", BODY, NOW),  # wrong secret
        (SECRET, BODY, NOW + 301),  # stale
        (SECRET, BODY, NOW - 301),  # from the future
    ],
    ids=["tampered-body", "wrong-secret", "stale", "future"],
)
def test_refused(secret: str, body: bytes, now: int) -> None:
    header = sign_webhook(SECRET, NOW, BODY)
    with pytest.raises(SandboxSignatureError):
        verify_webhook(secret, header, body, now=now)


def test_tolerance_is_adjustable() -> None:
    header = sign_webhook(SECRET, NOW, BODY)
    verify_webhook(SECRET, header, BODY, tolerance=1000, now=NOW + 900)
    with pytest.raises(SandboxSignatureError):
        verify_webhook(SECRET, header, BODY, tolerance=10, now=NOW + 11)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "nonsense",
        f"v1={'a' * 64}",
        f"t={NOW}",
        f"t=abc,v1={'a' * 64}",
        f"t=-{NOW},v1={'a' * 64}",
        f"t={NOW},t={NOW},v1={'a' * 64}",
        f"t={NOW},v1=",
        f"t={NOW};v1={'a' * 64}",
    ],
)
def test_missing_or_garbled_headers_are_refused(header: str | None) -> None:
    with pytest.raises(SandboxSignatureError):
        verify_webhook(SECRET, header, BODY, now=NOW)


def test_the_current_time_is_used_by_default() -> None:
    import time

    verify_webhook(SECRET, sign_webhook(SECRET, int(time.time()), BODY), BODY)
    with pytest.raises(SandboxSignatureError):
        verify_webhook(SECRET, sign_webhook(SECRET, NOW - 10_000_000, BODY), BODY)
