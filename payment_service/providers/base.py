"""The adapter contract every payment provider (PSP) implements.

An adapter is the only code that knows a provider's wire format. It speaks to the provider
over the network with timeouts, and translates everything the provider says into the
normalised objects below, and every failure into the exceptions below: nothing from
`requests` or the provider's SDK leaks past this boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ProviderError(Exception):
    """Base of every provider failure."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached, timed out, or answered 5xx/429: try again later."""


class ProviderRejected(ProviderError):
    """The provider refused the request (4xx): retrying the same request will not help."""


class ProviderNotFound(ProviderRejected):
    """The provider does not know the object asked about (404), as opposed to refusing the
    request for another reason (bad credentials, a state that forbids it)."""


class WebhookRejected(ProviderError):
    """A webhook that is unsigned, forged, stale or unparseable: answer 400, store nothing."""


class PaymentStatus(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


class SessionState(StrEnum):
    OPEN = "open"  # the buyer may still pay (after a decline too)
    COMPLETE = "complete"  # paid
    EXPIRED = "expired"


class EventKind(StrEnum):
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_DECLINED = "payment.declined"
    REFUND_SUCCEEDED = "refund.succeeded"
    SESSION_EXPIRED = "session.expired"
    OTHER = "other"


@dataclass(frozen=True)
class ProviderSession:
    """A hosted payment session at the provider, for one checkout."""

    session_id: str
    redirect_url: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ProviderPayment:
    """One payment attempt as the provider reports it (a decline is an attempt too)."""

    payment_id: str
    session_id: str | None
    reference: str | None  # our checkout id, as given when the session was created
    status: PaymentStatus
    amount: int
    currency: str
    tx_id: str | None
    decline_code: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class SessionStatus:
    """The provider's truth about a session: its state and its latest payment attempt."""

    session_id: str
    state: SessionState
    last_payment: ProviderPayment | None


@dataclass(frozen=True)
class ProviderRefund:
    refund_id: str
    payment_id: str
    amount: int
    currency: str
    succeeded: bool


@dataclass(frozen=True)
class ProviderEvent:
    """A verified provider webhook, normalised."""

    event_id: str
    kind: EventKind
    occurred_at: datetime
    payment: ProviderPayment | None = None  # for payment.* kinds
    refund: ProviderRefund | None = None  # for refund.* kinds
    session_id: str | None = None


@dataclass(frozen=True)
class SessionRequest:
    """What an adapter needs to open a session for a checkout."""

    checkout_id: str
    amount: int
    currency: str
    description: str
    return_url: str
    cancel_url: str
    webhook_url: str
    expires_at: datetime
    idempotency_key: str


class PaymentProvider(ABC):
    """A PSP adapter. Implementations must be thread-safe (one instance serves all threads)."""

    name: str

    @abstractmethod
    def create_session(self, request: SessionRequest) -> ProviderSession:
        """Open a hosted payment session. Idempotent under `request.idempotency_key`.

        Raises ProviderUnavailable (network, timeout, 5xx) or ProviderRejected (4xx)."""

    @abstractmethod
    def retrieve_session(self, session_id: str) -> SessionStatus:
        """Ask the provider for the true state of a session and its latest payment attempt.

        Raises ProviderUnavailable, or ProviderRejected for an unknown session."""

    @abstractmethod
    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Verify a webhook's signature on the raw body, then parse it.

        Must not touch the network or the database. Raises WebhookRejected for a missing,
        forged or stale signature and for a body it cannot parse."""

    @abstractmethod
    def expire_session(self, session_id: str) -> None:
        """Close a session so the buyer can no longer pay. Expiring an expired session is
        fine; a session that is already paid raises ProviderRejected. Raises
        ProviderUnavailable."""

    @abstractmethod
    def refund(
        self, payment_id: str, amount: int, *, idempotency_key: str, reason: str
    ) -> ProviderRefund:
        """Refund (part of) a captured payment. Idempotent under `idempotency_key`.

        Raises ProviderUnavailable (retry later) or ProviderRejected (e.g. already refunded)."""
