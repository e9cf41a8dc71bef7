"""Ticket checkouts on the wire (CONTRACT §5): statuses, the create request and the checkout."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from shared_contracts.money import (
    MAX_AMOUNT,
    MIN_AMOUNT,
    SUPPORTED_CURRENCIES,
    money_errors,
)

MAX_METADATA_KEYS = 20
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
MAX_URL_LENGTH = 2048


class CheckoutStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    REFUNDED = "refunded"


class PaymentMethodFamily(StrEnum):
    CARD = "card"
    EASY_PAY = "easy_pay"
    VIRTUAL_ACCOUNT = "virtual_account"
    BANK_TRANSFER = "bank_transfer"


class JsonInteger(fields.Integer):
    """A JSON integer only: floats (even 30000.0), strings and booleans are refused."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


def _identifier(description: str) -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Length(1, 128),
        metadata={"description": description},
    )


class CustomerSchema(Schema):
    platform_user_id = fields.String(
        data_key="platformUserId", validate=validate.Length(1, 128), load_default=None
    )
    name = fields.String(validate=validate.Length(1, 200), load_default=None)
    email = fields.Email(validate=validate.Length(max=254), load_default=None)
    phone = fields.String(
        validate=validate.Regexp(r"^\+?[0-9][0-9 ()\-]{3,31}$", error="Not a phone number."),
        load_default=None,
    )


class CreateCheckoutSchema(Schema):
    """The body of POST /v1/ticket-checkouts."""

    reservation_id = _identifier("The platform's reservation id.")
    reservation_id.data_key = "reservationId"
    event_id = _identifier("The platform's event id.")
    event_id.data_key = "eventId"
    tier_id = _identifier("The platform's ticket tier id.")
    tier_id.data_key = "tierId"
    order_name = fields.String(
        data_key="orderName", required=True, validate=validate.Length(1, 200)
    )
    amount = JsonInteger(
        required=True,
        metadata={
            "description": "Integer in the currency's minor unit (KRW 30000 = ₩30,000).",
            "minimum": MIN_AMOUNT,
            "maximum": MAX_AMOUNT,
        },
    )
    currency = fields.String(
        required=True,
        metadata={
            "description": "ISO 4217, upper case, one of the supported currencies.",
            "enum": sorted(SUPPORTED_CURRENCIES),
        },
    )
    customer = fields.Nested(CustomerSchema, load_default=None)
    success_url = fields.String(
        data_key="successUrl", required=True, validate=validate.Length(1, MAX_URL_LENGTH)
    )
    cancel_url = fields.String(
        data_key="cancelUrl", required=True, validate=validate.Length(1, MAX_URL_LENGTH)
    )
    callback_url = fields.String(
        data_key="callbackUrl", required=True, validate=validate.Length(1, MAX_URL_LENGTH)
    )
    provider = fields.String(validate=validate.Length(1, 32), load_default=None)
    payment_method_family = fields.Enum(
        PaymentMethodFamily, by_value=True, data_key="paymentMethodFamily", load_default=None
    )
    expires_at = fields.AwareDateTime(
        data_key="expiresAt",
        load_default=None,
        metadata={"description": "Default now + 15 min; allowed now + 60 s to now + 24 h."},
    )
    metadata = fields.Dict(
        keys=fields.String(validate=validate.Length(1, MAX_METADATA_KEY_LENGTH)),
        values=fields.String(validate=validate.Length(max=MAX_METADATA_VALUE_LENGTH)),
        validate=validate.Length(max=MAX_METADATA_KEYS),
        load_default=dict,
        metadata={
            "description": (
                f"Up to {MAX_METADATA_KEYS} string values under keys of 1 to "
                f"{MAX_METADATA_KEY_LENGTH} characters; sent back in every callback."
            ),
            "maxProperties": MAX_METADATA_KEYS,
        },
    )

    @validates_schema(skip_on_field_errors=False)
    def _money(self, data: dict[str, Any], **_: Any) -> None:
        # Report currency and range errors together with field errors, not on a second try.
        if "currency" not in data:
            return
        errors = money_errors(data.get("amount", 1), data["currency"])
        if "amount" not in data:
            errors.pop("amount", None)
        if errors:
            raise ValidationError(errors)


class _Answer(Schema):
    """A response body: every field is always there (``required``, null where ``allow_none``),
    and fields added later are ignored by a client loading it (EXCLUDE), so the OpenAPI document
    does not forbid them either (no ``additionalProperties: false``). A client that must take
    an answer with fields missing loads it with ``partial=True`` and checks what it needs."""

    class Meta:
        unknown = EXCLUDE


class PaymentSchema(_Answer):
    payment_id = fields.String(data_key="paymentId", required=True)
    provider = fields.String(required=True)
    tx_id = fields.String(data_key="txId", required=True, allow_none=True)
    paid_at = fields.AwareDateTime(data_key="paidAt", required=True)


class CheckoutSchema(_Answer):
    """A checkout as the API returns it."""

    checkout_id = fields.String(data_key="checkoutId", required=True)
    checkout_url = fields.String(data_key="checkoutUrl", required=True)
    status = fields.Enum(CheckoutStatus, by_value=True, required=True)
    reservation_id = fields.String(data_key="reservationId", required=True)
    event_id = fields.String(data_key="eventId", required=True)
    tier_id = fields.String(data_key="tierId", required=True)
    order_name = fields.String(data_key="orderName", required=True)
    # JsonInteger: a client loading an answer refuses 30000.7 and "30000" (CONTRACT §1);
    # dumping and the OpenAPI document are those of fields.Integer.
    amount = JsonInteger(required=True)
    currency = fields.String(required=True)
    provider = fields.String(required=True)
    payment_method_family = fields.String(
        data_key="paymentMethodFamily", required=True, allow_none=True
    )
    attempts = JsonInteger(
        required=True, metadata={"description": "Declined payment attempts so far."}
    )
    max_attempts = JsonInteger(data_key="maxAttempts", required=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    expires_at = fields.AwareDateTime(data_key="expiresAt", required=True)
    created_at = fields.AwareDateTime(data_key="createdAt", required=True)
    paid_at = fields.AwareDateTime(data_key="paidAt", required=True, allow_none=True)
    payment = fields.Nested(
        PaymentSchema,
        required=True,
        allow_none=True,
        metadata={"description": "The captured payment; null until the checkout is paid."},
    )


class CheckoutListSchema(_Answer):
    data = fields.List(fields.Nested(CheckoutSchema), required=True)


class FindCheckoutsQuerySchema(Schema):
    reservation_id = fields.String(
        data_key="reservationId", required=True, validate=validate.Length(1, 128)
    )


def parse_wire_datetime(value: str) -> datetime:
    """Parse an RFC 3339 timestamp from the wire (always with an offset)."""
    parsed = fields.AwareDateTime().deserialize(value)
    assert isinstance(parsed, datetime)
    return parsed
