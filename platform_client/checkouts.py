"""Typed checkout requests and answers, and their mapping to and from the wire (CONTRACT §5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from marshmallow import ValidationError

from shared_contracts.checkouts import (
    CheckoutSchema,
    CheckoutStatus,
    CreateCheckoutSchema,
    PaymentMethodFamily,
)


@dataclass(frozen=True, kw_only=True)
class Customer:
    """The buyer as the platform knows them; every field is optional."""

    platform_user_id: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, kw_only=True)
class CheckoutRequest:
    """The body of a create-checkout call; ``amount`` is in the currency's minor unit."""

    reservation_id: str
    event_id: str
    tier_id: str
    order_name: str
    amount: int
    currency: str
    success_url: str
    cancel_url: str
    callback_url: str
    customer: Customer | None = None
    provider: str | None = None
    payment_method_family: PaymentMethodFamily | None = None
    expires_at: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Caught here because the server cannot tell a float from a rounding bug of ours.
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("amount must be an int in the currency's minor unit")
        if self.expires_at is not None and self.expires_at.utcoffset() is None:
            raise ValueError("expires_at must be an aware datetime (e.g. datetime.now(UTC))")

    def to_wire(self) -> dict[str, Any]:
        """The JSON body, camelCase, without the optional fields left unset."""
        attributes = {name: getattr(self, name) for name in self.__dataclass_fields__}
        attributes["metadata"] = dict(self.metadata)
        if self.customer is not None:
            attributes["customer"] = vars(self.customer)
        if self.payment_method_family is not None:
            attributes["payment_method_family"] = PaymentMethodFamily(self.payment_method_family)
        wire: dict[str, Any] = _CREATE_SCHEMA.dump(attributes)
        if isinstance(wire.get("customer"), dict):
            wire["customer"] = {k: v for k, v in wire["customer"].items() if v is not None}
        return {key: value for key, value in wire.items() if value is not None}


@dataclass(frozen=True, kw_only=True)
class Payment:
    """The captured payment of a paid checkout."""

    payment_id: str
    provider: str
    tx_id: str | None
    paid_at: datetime


@dataclass(frozen=True, kw_only=True)
class Checkout:
    """A checkout as the service answers it. ``checkout_url`` is where to send the buyer.

    ``replayed`` is True when a create repeated an earlier key and body: the answer is the
    checkout as it was first created, not as it is now (it may have been canceled or expired
    since), so ask ``get_checkout`` before sending a buyer to it. It is about the answer, not
    the checkout, so two Checkouts that differ only in it are equal."""

    checkout_id: str
    checkout_url: str
    status: CheckoutStatus
    reservation_id: str
    amount: int
    currency: str
    provider: str
    expires_at: datetime
    created_at: datetime
    event_id: str | None = None
    tier_id: str | None = None
    order_name: str | None = None
    payment_method_family: str | None = None
    attempts: int = 0
    max_attempts: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    paid_at: datetime | None = None
    payment: Payment | None = None
    replayed: bool = field(default=False, compare=False)


_CREATE_SCHEMA = CreateCheckoutSchema()
_ANSWER_SCHEMA = CheckoutSchema()  # ignores fields a newer server adds (EXCLUDE)
_REQUIRED = (
    "checkout_id", "checkout_url", "status", "reservation_id", "amount", "currency", "provider",
    "expires_at", "created_at",
)  # fmt: skip
_PAYMENT_REQUIRED = ("payment_id", "provider", "paid_at")  # and tx_id, which may be null


def checkout_from_wire(body: object, *, replayed: bool = False) -> Checkout:
    """Build a Checkout from decoded JSON; raises ValueError if it is not one. ``replayed``
    comes from the answer's ``Idempotent-Replayed`` header, which the body does not carry."""
    if not isinstance(body, dict):
        raise ValueError("a checkout must be a JSON object")
    try:
        # partial: a field the schema requires may be missing (an older server); what this
        # client cannot do without is checked below, with a message that names it.
        loaded: dict[str, Any] = _ANSWER_SCHEMA.load(body, partial=True)
    except ValidationError as exc:
        raise ValueError(str(exc.messages)) from None
    missing = [name for name in _REQUIRED if loaded.get(name) is None]
    if missing:
        raise ValueError(f"checkout lacks {', '.join(missing)}")
    known = {name: loaded[name] for name in Checkout.__dataclass_fields__ if name in loaded}
    known["metadata"] = MappingProxyType(dict(known.get("metadata") or {}))
    if known.get("attempts") is None:
        known.pop("attempts", None)
    if (payment := known.get("payment")) is not None:  # {} too: present, so it must be whole
        absent = [name for name in _PAYMENT_REQUIRED if payment.get(name) is None]
        absent += [] if "tx_id" in payment else ["tx_id"]  # present, but may be null
        if absent:
            raise ValueError(f"checkout payment lacks {', '.join(absent)}")
        known["payment"] = Payment(**payment)
    return Checkout(**known, replayed=replayed)
