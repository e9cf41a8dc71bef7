"""Exceptions of the platform client: error answers of the payment service, rejected callbacks."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from shared_contracts.errors import ErrorCode


class PaymentServiceError(Exception):
    """The payment service refused a call, or could not be asked; branch on the subclass or
    ``code``, never on ``message``. ``request_id`` is the id to quote to its operators."""

    def __init__(
        self,
        code: str,
        message: str,
        request_id: str | None = None,
        details: Mapping[str, object] | None = None,
        status: int | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details: Mapping[str, object] = MappingProxyType(dict(details or {}))
        self.status = status
        suffix = f" (status {status}, request {request_id})" if request_id else ""
        if not suffix and status is not None:
            suffix = f" (status {status})"
        super().__init__(f"{code}: {message}{suffix}")


class Unauthenticated(PaymentServiceError):
    """The API key is missing, wrong or revoked (401)."""


class NotFound(PaymentServiceError):
    """No such checkout for this merchant (404; another merchant's checkout looks the same)."""


class ValidationFailed(PaymentServiceError):
    """The request broke a field rule (422); ``details`` maps each wire field to its messages."""


class UrlNotAllowed(PaymentServiceError):
    """A success, cancel or callback URL is not on the merchant's allowlists (422)."""


class CheckoutExists(PaymentServiceError):
    """The reservation already has an open or paid checkout (409); ``checkout_id`` names it
    (None if it was gone by the time the service looked). It may also name one past its
    deadline whose provider session the service is still settling (it reads as ``expired``):
    then try again shortly rather than sending the buyer to it."""

    @property
    def checkout_id(self) -> str | None:
        value = self.details.get("checkoutId")
        return value if isinstance(value, str) else None


class IdempotencyKeyInUse(PaymentServiceError):
    """A request with this Idempotency-Key is still running (409): retry it a little later."""


class IdempotencyKeyReused(PaymentServiceError):
    """This Idempotency-Key was used with another body (422): a bug in the caller's keys."""


class InvalidState(PaymentServiceError):
    """The checkout cannot do that in its state, e.g. cancel a paid checkout (409)."""


class RateLimited(PaymentServiceError):
    """Too many requests (429); ``retry_after`` is the server's hint in seconds, if it gave one."""

    retry_after: float | None = None


class PaymentServiceUnavailable(PaymentServiceError):
    """The service could not answer usefully: unreachable, timed out, or a 5xx even after the
    client's retries. Safe to retry later with the same Idempotency-Key."""


class UnexpectedResponse(PaymentServiceError):
    """An answer that is not the contract's: not JSON, not the error envelope, not a checkout
    (often a wrong ``base_url`` or a proxy's page)."""


ERROR_CLASSES: Final[Mapping[ErrorCode, type[PaymentServiceError]]] = MappingProxyType(
    {
        ErrorCode.UNAUTHENTICATED: Unauthenticated,
        ErrorCode.NOT_FOUND: NotFound,
        ErrorCode.VALIDATION_ERROR: ValidationFailed,
        ErrorCode.URL_NOT_ALLOWED: UrlNotAllowed,
        ErrorCode.CHECKOUT_EXISTS: CheckoutExists,
        ErrorCode.IDEMPOTENCY_KEY_IN_USE: IdempotencyKeyInUse,
        ErrorCode.IDEMPOTENCY_KEY_REUSED: IdempotencyKeyReused,
        ErrorCode.INVALID_STATE: InvalidState,
        ErrorCode.RATE_LIMITED: RateLimited,
        ErrorCode.PROVIDER_UNAVAILABLE: PaymentServiceUnavailable,
        ErrorCode.INTERNAL_ERROR: PaymentServiceUnavailable,
    }
)


def error_class(code: str, status: int) -> type[PaymentServiceError]:
    """The exception for an envelope's ``code``; any 5xx is unavailable whatever its code, and
    codes this client does not know (a newer server) fall back to the base class."""
    if status >= 500:
        return PaymentServiceUnavailable
    try:
        return ERROR_CLASSES.get(ErrorCode(code), PaymentServiceError)
    except ValueError:
        return PaymentServiceError


class CallbackRejected(Exception):
    """A callback must not be acted on; the receiver answers 4xx so the service retries it."""

    code: str = "callback_rejected"


class InvalidSignature(CallbackRejected):
    """Missing webhook headers, or no signature that matches one of the secrets; also a redirect
    whose ``sig`` does not match its values."""

    code = "invalid_signature"


class StaleTimestamp(CallbackRejected):
    """``webhook-timestamp`` is further than the tolerance from now (a replay or a bad clock)."""

    code = "stale_timestamp"


class MalformedPayload(CallbackRejected):
    """A correctly signed body that is not a callback this client understands."""

    code = "malformed_payload"
