"""Signatures of the contract: Standard Webhooks for callbacks (§8) and redirect `sig`s (§7).

Callbacks follow https://www.standardwebhooks.com: the signed content is
``f"{msg_id}.{timestamp}.".encode() + body`` and the key is the base64-decoded part of a
``whsec_`` secret. Several secrets may be active during a rotation; a sender signs with each
and a receiver accepts any.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _random
import time
from collections.abc import Mapping, Sequence
from typing import Final

from itsdangerous import Signer

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a format marker, not a secret
SIGNATURE_VERSION: Final = "v1"
DEFAULT_TOLERANCE: Final = 300  # seconds either side of now (CONTRACT §8: five minutes)

REDIRECT_SALT: Final = "ticket-payment.redirect"

# The spec asks for 24 to 64 bytes of key; its own test vector uses 24.
_MIN_KEY_BYTES: Final = 24
_MAX_KEY_BYTES: Final = 64
_TIMESTAMP_RE: Final = re.compile(r"[0-9]{1,12}")


class WebhookVerificationError(Exception):
    """A callback failed verification; the receiver should answer 4xx and not act on it."""


class MissingHeaders(WebhookVerificationError):
    """``webhook-id``, ``webhook-timestamp`` or ``webhook-signature`` is absent or empty."""


class InvalidTimestamp(WebhookVerificationError):
    """``webhook-timestamp`` is not a plain integer of unix seconds."""


class StaleTimestamp(WebhookVerificationError):
    """``webhook-timestamp`` is further than the tolerance from now, in the past or future."""


class InvalidSignature(WebhookVerificationError):
    """No ``v1`` signature in the header matches any of the secrets."""


def generate_secret() -> str:
    """A new merchant signing secret: ``whsec_`` + standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(32)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_`` secret; ValueError if the secret is malformed."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"signing secret must be a string starting with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("signing secret is not valid base64 after the prefix") from None
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise ValueError(
            f"signing secret must decode to {_MIN_KEY_BYTES}-{_MAX_KEY_BYTES} bytes, not {len(key)}"
        )
    return key


def check_secret(secret: str) -> None:
    """ValueError, with the reason and never the value, if ``secret`` is not a well-formed
    ``whsec_`` secret: for configuration checks at start-up."""
    _secret_key(secret)


def _as_list(secrets: str | Sequence[str]) -> list[str]:
    listed = [secrets] if isinstance(secrets, str) else list(secrets)
    if not listed:
        raise ValueError("at least one signing secret is needed")
    return listed


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed_content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed_content, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` for ``msg_id`` at ``timestamp``."""
    return f"{SIGNATURE_VERSION},{_signature(_secret_key(secret), msg_id, timestamp, body)}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per active secret, space-separated."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in _as_list(secrets))


def webhook_headers(
    secrets: Sequence[str],
    msg_id: str,
    body: bytes,
    timestamp: int | None = None,
    request_id: str | None = None,
) -> dict[str, str]:
    """All headers of one delivery attempt; ``timestamp`` defaults to now."""
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(secrets, msg_id, ts, body),
        "content-type": "application/json",
    }
    if request_id is not None:
        headers["x-request-id"] = request_id
    return headers


def verify(
    secrets: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> None:
    """Check a received callback; raises a ``WebhookVerificationError`` subclass if it fails.

    ``body`` must be the raw bytes received, before any JSON parsing. A malformed secret is a
    configuration error and raises ValueError, not a verification error.
    """
    keys = [_secret_key(secret) for secret in _as_list(secrets)]
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    raw_timestamp = lowered.get("webhook-timestamp", "").strip()
    raw_signatures = lowered.get("webhook-signature", "")
    if not (msg_id and raw_timestamp and raw_signatures):
        raise MissingHeaders("webhook-id, webhook-timestamp and webhook-signature are required")

    if not _TIMESTAMP_RE.fullmatch(raw_timestamp):
        raise InvalidTimestamp("webhook-timestamp must be integer unix seconds")
    timestamp = int(raw_timestamp)
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        raise StaleTimestamp("webhook-timestamp is outside the tolerance")

    try:
        msg_id.encode()
    except UnicodeEncodeError:
        # A lone surrogate, e.g. from a framework that decodes header bytes with surrogateescape:
        # no sender can have signed it (the signed content is UTF-8), so nothing can match.
        raise InvalidSignature("webhook-id is not valid text") from None
    offered = [
        candidate.encode("ascii", "replace")
        for version, _, candidate in (sig.partition(",") for sig in raw_signatures.split())
        if version == SIGNATURE_VERSION
    ]
    for key in keys:
        expected = _signature(key, msg_id, timestamp, body).encode("ascii")
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return
    raise InvalidSignature("no matching v1 signature")


def _redirect_signer(secrets: Sequence[str]) -> Signer:
    # itsdangerous signs with the last key and verifies against all of them.
    return Signer(
        [_secret_key(secret) for secret in secrets],
        salt=REDIRECT_SALT,
        digest_method=hashlib.sha256,
    )


def _redirect_message(checkout_id: str, status: str) -> str:
    # The status never contains a dot, so the last dot splits the message in exactly one way.
    if "." in status:
        raise ValueError("redirect status must not contain '.'")
    return f"{checkout_id}.{status}"


def sign_redirect(secret: str, checkout_id: str, status: str) -> str:
    """The ``sig`` query parameter for a buyer redirect carrying ``checkoutId`` and ``status``."""
    signature = _redirect_signer([secret]).get_signature(_redirect_message(checkout_id, status))
    return signature.decode("ascii")


def verify_redirect(secrets: str | Sequence[str], checkout_id: str, status: str, sig: str) -> bool:
    """True if ``sig`` signs this ``checkoutId``/``status`` under any of the secrets.

    Tampered or junk values give False, never an exception; a malformed secret raises ValueError.
    """
    signer = _redirect_signer(_as_list(secrets))
    if not all(isinstance(value, str) for value in (checkout_id, status, sig)):
        return False
    try:
        return signer.verify_signature(_redirect_message(checkout_id, status), sig)
    except ValueError:  # a dotted status, or a sig that is not even ASCII
        return False
