"""The sandbox PSP adapter: speaks the sandbox's REST API over HTTP and verifies its webhooks.

The sandbox (``payment_service.sandbox_psp``) is a separate system even when it is mounted in
the same process: this adapter reaches it only over HTTP, through one ``requests.Session``.
Everything ``requests`` or the sandbox can say is translated here into the normalised objects
and exceptions of ``payment_service.providers.base``.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import requests

from payment_service.providers.base import (
    EventKind,
    PaymentProvider,
    PaymentStatus,
    ProviderEvent,
    ProviderNotFound,
    ProviderPayment,
    ProviderRefund,
    ProviderRejected,
    ProviderSession,
    ProviderUnavailable,
    SessionRequest,
    SessionState,
    SessionStatus,
    WebhookRejected,
)
from payment_service.sandbox_psp.signature import HEADER, SandboxSignatureError, verify_webhook

__all__ = ["SandboxProvider", "sandbox_base_url"]

USER_AGENT = "payment-service-sandbox-adapter/1.0"
MAX_REASON_LENGTH = 500  # the sandbox refuses longer refund reasons
# Sandbox ids are ``<prefix>_<hex>``; anything else cannot exist there, and is never put in a
# URL path (a "." or ".." segment would be normalised away and reach another endpoint).
_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_TRANSIENT_STATUSES = frozenset({408, 429})


def sandbox_base_url(public_url: str) -> str:
    """The sandbox's root when it is mounted under ``/sandbox`` of the payment service."""
    return public_url.rstrip("/") + "/sandbox"


class _Malformed(Exception):
    """A sandbox object that lacks a field or has one of the wrong type."""


class SandboxProvider(PaymentProvider):
    """The adapter for the sandbox PSP; thread-safe, one instance serves every thread.

    Every call has a (connect, read) timeout and follows no redirect. The session's state is
    never changed per call: the credentials travel as per-request headers, and a session the
    adapter builds itself keeps no cookies. ``close()`` closes that session (not one passed in).
    """

    name = "sandbox"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        webhook_secret: str,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not have a query string or a fragment")
        if not api_key or not webhook_secret:
            raise ValueError("api_key and webhook_secret must not be empty")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._webhook_secret = webhook_secret
        self._timeout = (connect_timeout, read_timeout)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # The API sets no cookies; refusing them all keeps the session free of shared state.
            session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        self._session = session

    def __repr__(self) -> str:  # never show the key
        return f"SandboxProvider(base_url={self._base_url!r})"

    def close(self) -> None:
        """Close the HTTP session if the adapter created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> SandboxProvider:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the PaymentProvider contract ------------------------------------------------------

    def create_session(self, request: SessionRequest) -> ProviderSession:
        body = {
            "amount": request.amount,
            "currency": request.currency,
            "reference": request.checkout_id,
            "description": request.description,
            "returnUrl": request.return_url,
            "cancelUrl": request.cancel_url,
            "webhookUrl": request.webhook_url,
            "expiresAt": _format_timestamp(request.expires_at),
        }
        data = self._call(
            "POST", "/api/sessions", json_body=body, idempotency_key=request.idempotency_key
        )
        try:
            session_id = _str(data, "id")
            url = _str(data, "url")
            if urlsplit(url).scheme not in ("http", "https"):
                raise _Malformed("url: not an http(s) URL")
            expires_at = _optional_timestamp(data, "expiresAt")
        except (_Malformed, ValueError) as exc:
            self._malformed("POST /api/sessions", exc)
        return ProviderSession(session_id=session_id, redirect_url=url, expires_at=expires_at)

    def retrieve_session(self, session_id: str) -> SessionStatus:
        path = f"/api/sessions/{self._path_id('session', session_id)}"
        data = self._call("GET", path)
        try:
            status = _session_status(data)
            if status.session_id != session_id:
                raise _Malformed(f"id: {status.session_id!r}, not the session asked for")
        except (_Malformed, ValueError) as exc:
            self._malformed(f"GET {path}", exc)
        return status

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        wanted = HEADER.lower()
        header = next((value for key, value in headers.items() if key.lower() == wanted), None)
        if header is None:
            raise WebhookRejected(f"missing {HEADER} header")
        try:
            verify_webhook(self._webhook_secret, header, body)
        except (SandboxSignatureError, OverflowError) as exc:  # an absurd t overflows a float
            raise WebhookRejected(f"bad {HEADER}: {exc}") from None
        try:
            event = json.loads(body)
            if not isinstance(event, dict):
                raise _Malformed("the body is not a JSON object")
            return _event(event)
        except (_Malformed, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise WebhookRejected(f"unparseable webhook: {exc}") from None
        except RecursionError:  # json.loads recurses once per nested array or object
            raise WebhookRejected("unparseable webhook: the JSON nests too deeply") from None

    def expire_session(self, session_id: str) -> None:
        path = f"/api/sessions/{self._path_id('session', session_id)}/expire"
        data = self._call("POST", path)
        try:
            _session_status(data)
        except (_Malformed, ValueError) as exc:
            self._malformed(f"POST {path}", exc)

    def refund(
        self, payment_id: str, amount: int, *, idempotency_key: str, reason: str
    ) -> ProviderRefund:
        path = f"/api/payments/{self._path_id('payment', payment_id)}/refunds"
        body: dict[str, Any] = {"amount": amount}
        if reason.strip():
            body["reason"] = reason[:MAX_REASON_LENGTH]
        data = self._call("POST", path, json_body=body, idempotency_key=idempotency_key)
        try:
            return _refund(data)
        except (_Malformed, ValueError) as exc:
            self._malformed(f"POST {path}", exc)

    # -- HTTP ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """One API call: the decoded JSON object of a 2xx answer, or a ProviderError."""
        what = f"{method} {path}"
        headers = dict(self._headers)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self._session.request(
                method,
                self._base_url + path,
                json=json_body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise ProviderUnavailable(self._scrub(f"sandbox {what}: timed out ({exc})")) from None
        except requests.RequestException as exc:
            raise ProviderUnavailable(
                self._scrub(f"sandbox {what}: unreachable ({type(exc).__name__}: {exc})")
            ) from None
        with response:
            status = response.status_code
            if 200 <= status < 300:
                try:
                    data = response.json()
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    raise ProviderUnavailable(
                        f"sandbox {what}: HTTP {status} without a JSON object"
                    )
                return data
            problem = self._scrub(f"sandbox {what}: HTTP {status}{_error_text(response)}")
            if status == 404:
                raise ProviderNotFound(problem)
            if 400 <= status < 500 and status not in _TRANSIENT_STATUSES:
                raise ProviderRejected(problem)
            # 5xx, 408, 429, and a redirect (which an API call never follows): the state of the
            # request is unknown, so nothing may be concluded from it; try again later.
            raise ProviderUnavailable(problem)

    def _path_id(self, kind: str, object_id: str) -> str:
        if not _ID.fullmatch(object_id):
            raise ProviderNotFound(self._scrub(f"sandbox: no such {kind}: {object_id[:80]!r}"))
        return quote(object_id, safe="")

    def _malformed(self, what: str, exc: Exception) -> NoReturn:
        raise ProviderUnavailable(
            self._scrub(f"sandbox {what}: malformed answer ({exc})")
        ) from None

    def _scrub(self, text: str) -> str:
        """The text with the credentials blanked out, should anything ever echo them."""
        for secret in (self._api_key, self._webhook_secret):
            text = text.replace(secret, "[redacted]")
        return text


def _error_text(response: requests.Response) -> str:
    """``": <type>: <message>"`` from the sandbox's error body, or "" when there is none."""
    try:
        error = response.json().get("error")
        kind, message = error.get("type"), error.get("message")
    except (ValueError, AttributeError):
        return ""
    parts = [str(part)[:300] for part in (kind, message) if part]
    return ": " + ": ".join(parts) if parts else ""


# -- wire objects -> normalised objects ----------------------------------------------------


def _format_timestamp(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("expires_at must be a timezone-aware datetime")
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _field(data: Mapping[str, Any], name: str) -> Any:
    if name not in data:
        raise _Malformed(f"{name}: missing")
    return data[name]


def _str(data: Mapping[str, Any], name: str) -> str:
    value = _field(data, name)
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{name}: not a non-empty string")
    return value


def _optional_str(data: Mapping[str, Any], name: str) -> str | None:
    return None if _field(data, name) is None else _str(data, name)


def _int(data: Mapping[str, Any], name: str) -> int:
    value = _field(data, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Malformed(f"{name}: not an integer")
    return value


def _object(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = _field(data, name)
    if not isinstance(value, dict):
        raise _Malformed(f"{name}: not an object")
    return value


def _timestamp(data: Mapping[str, Any], name: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime."""
    value = _str(data, name)
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise _Malformed(f"{name}: a timestamp without a time zone")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # year 9999 at -01:00 overflows in UTC
        raise _Malformed(f"{name}: not an RFC 3339 timestamp") from None


def _optional_timestamp(data: Mapping[str, Any], name: str) -> datetime | None:
    return None if _field(data, name) is None else _timestamp(data, name)


def _session_status(data: Mapping[str, Any]) -> SessionStatus:
    last = None if _field(data, "lastPayment") is None else _object(data, "lastPayment")
    return SessionStatus(
        session_id=_str(data, "id"),
        state=SessionState(_str(data, "status")),
        last_payment=None if last is None else _payment(last),
    )


def _payment(data: Mapping[str, Any]) -> ProviderPayment:
    return ProviderPayment(
        payment_id=_str(data, "id"),
        session_id=_optional_str(data, "sessionId"),
        reference=_optional_str(data, "reference"),
        status=PaymentStatus(_str(data, "status")),
        amount=_int(data, "amount"),
        currency=_str(data, "currency"),
        tx_id=_optional_str(data, "txId"),
        decline_code=_optional_str(data, "declineCode"),
        occurred_at=_timestamp(data, "createdAt"),
    )


def _refund(data: Mapping[str, Any]) -> ProviderRefund:
    return ProviderRefund(
        refund_id=_str(data, "id"),
        payment_id=_str(data, "paymentId"),
        amount=_int(data, "amount"),
        currency=_str(data, "currency"),
        succeeded=_str(data, "status") == "succeeded",
    )


_PAYMENT_KINDS = {
    "payment.succeeded": (EventKind.PAYMENT_SUCCEEDED, PaymentStatus.SUCCEEDED),
    "payment.declined": (EventKind.PAYMENT_DECLINED, PaymentStatus.DECLINED),
}


def _event(event: Mapping[str, Any]) -> ProviderEvent:
    event_id = _str(event, "id")
    event_type = _str(event, "type")
    created = _int(event, "created")
    try:
        occurred_at = datetime.fromtimestamp(created, UTC)
    except (ValueError, OverflowError, OSError):
        raise _Malformed("created: not a Unix time") from None
    if event_type in _PAYMENT_KINDS:
        kind, status = _PAYMENT_KINDS[event_type]
        payment = _payment(_object(_object(event, "data"), "object"))
        if payment.status is not status:
            raise _Malformed(f"a {event_type} event about a {payment.status} payment")
        return ProviderEvent(
            event_id, kind, occurred_at, payment=payment, session_id=payment.session_id
        )
    if event_type == "refund.succeeded":
        refund = _refund(_object(_object(event, "data"), "object"))
        return ProviderEvent(event_id, EventKind.REFUND_SUCCEEDED, occurred_at, refund=refund)
    if event_type == "session.expired":
        session_id = _str(_object(_object(event, "data"), "object"), "id")
        return ProviderEvent(
            event_id, EventKind.SESSION_EXPIRED, occurred_at, session_id=session_id
        )
    return ProviderEvent(event_id, EventKind.OTHER, occurred_at)
