"""Webhook signatures, Stripe style: ``Sandbox-Signature: t=<unix>,v1=<hex HMAC-SHA256>``."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Sandbox-Signature"
DEFAULT_TOLERANCE = 300


class SandboxSignatureError(ValueError):
    """The header is missing or garbled, the signature does not match, or ``t`` is too old/new."""


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` keyed with ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Sandbox-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={int(timestamp)},v1={compute_signature(secret, int(timestamp), body)}"


def verify_webhook(
    secret: str,
    header: str | None,
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Return if ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of ``now``.

    Several ``v1`` entries may be present (as during a secret rotation); one match is enough.
    Entries of other schemes are ignored, as Stripe's are.
    """
    timestamp, candidates = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SandboxSignatureError("timestamp outside the tolerance window")
    expected = compute_signature(secret, timestamp, body)
    # Compare against every candidate so timing does not reveal which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise SandboxSignatureError("no signature matches the body")


def _parse(header: str | None) -> tuple[int, list[str]]:
    if not header or not header.strip():
        raise SandboxSignatureError(f"missing {HEADER} header")
    timestamps: list[str] = []
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not value:
            raise SandboxSignatureError(f"garbled {HEADER} header")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            candidates.append(value)
    if len(timestamps) != 1 or not timestamps[0].isascii() or not timestamps[0].isdigit():
        raise SandboxSignatureError(f"{HEADER} header needs exactly one integer t")
    if not candidates:
        raise SandboxSignatureError(f"{HEADER} header has no v1 signature")
    return int(timestamps[0]), candidates
