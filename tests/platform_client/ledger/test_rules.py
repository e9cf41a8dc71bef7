"""The ledger's pure rules, without a database: the checkout it asks for, what a payment must
match, the sale window, and the SQLite engine setting that stands in for a row lock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, event

from platform_client.callbacks import TicketPaymentPaid
from platform_client.errors import PaymentServiceUnavailable
from platform_client.ledger import CheckoutUnavailable, Hold, LedgerConfig, SoldOut, Tier
from platform_client.ledger.checkout import checkout_request, idempotency_key
from platform_client.ledger.engine import _on_begin, ledger_engine, serialise_sqlite_writers
from platform_client.ledger.payments import payment_mismatches
from platform_client.ledger.views import on_sale
from shared_contracts.events import EventType

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
HOLD = Hold(
    reservation_id="res_a1", user_id="u_9", event_id="evt_42", tier_id="tier_7", amount=30000,
    currency="KRW", provider="sandbox", order_name="Seoul Marathon 2027 - Full course",
    email="kim@example.com", expires_at=NOW + timedelta(minutes=10), checkout_id="chk_1",
    checkout_url="https://pay.example/checkout/chk_1",
)  # fmt: skip
CONFIG = LedgerConfig(
    callback_url="https://platform.example/hooks/ticket-payments",
    success_url="https://platform.example/r/{reservation_id}?payment=success",
    cancel_url="https://platform.example/r/{reservation_id}?payment=cancel&x={y}",
    provider="sandbox",
)


def paid_event(**changes: object) -> TicketPaymentPaid:
    fields: dict[str, object] = {
        "event_id": "evt_cb", "type": EventType.PAID, "timestamp": NOW, "checkout_id": "chk_1",
        "reservation_id": "res_a1", "platform_event_id": "evt_42", "tier_id": "tier_7",
        "amount": 30000, "currency": "KRW", "payment_id": "pay_1", "provider": "sandbox",
        "tx_id": "tx_1", "paid_at": NOW,
    }  # fmt: skip
    fields.update(changes)
    return TicketPaymentPaid(**fields)  # type: ignore[arg-type]


def test_the_checkout_request_comes_from_the_hold_and_expires_with_it():
    request = checkout_request(HOLD, CONFIG)
    assert request.expires_at == HOLD.expires_at
    assert (request.reservation_id, request.event_id, request.tier_id) == (
        "res_a1", "evt_42", "tier_7",
    )  # fmt: skip
    assert (request.amount, request.currency, request.provider) == (30000, "KRW", "sandbox")
    assert request.success_url == "https://platform.example/r/res_a1?payment=success"
    assert request.cancel_url == "https://platform.example/r/res_a1?payment=cancel&x={y}"
    assert request.callback_url == CONFIG.callback_url
    assert request.customer is not None
    assert (request.customer.platform_user_id, request.customer.email) == ("u_9", "kim@example.com")
    assert idempotency_key("res_a1") == "reservation:res_a1"


def test_the_platform_must_name_its_provider():
    # "sandbox" exists only on a sandbox service: a default would fail every production sale.
    with pytest.raises(TypeError, match="provider"):
        LedgerConfig(  # type: ignore[call-arg]
            callback_url=CONFIG.callback_url,
            success_url=CONFIG.success_url,
            cancel_url=CONFIG.cancel_url,
        )


def test_the_same_hold_always_gives_the_same_body_whatever_was_stored_after():
    # A repeat reads the hold back with its checkout id and URL; the body must not change.
    bare = replace(HOLD, checkout_id=None, checkout_url=None)
    assert checkout_request(bare, CONFIG).to_wire() == checkout_request(HOLD, CONFIG).to_wire()


def test_a_payment_matches_its_hold_field_by_field():
    assert payment_mismatches(HOLD, paid_event()) == []
    assert payment_mismatches(HOLD, paid_event(amount=29999, currency="USD")) == [
        "amount", "currency",
    ]  # fmt: skip
    assert payment_mismatches(HOLD, paid_event(checkout_id="chk_2")) == ["checkoutId"]
    assert payment_mismatches(HOLD, paid_event(provider="portone")) == ["provider"]
    assert payment_mismatches(HOLD, paid_event(platform_event_id="e", tier_id="t")) == [
        "eventId", "tierId",
    ]  # fmt: skip
    # Before the create call stored the checkout id there is nothing to compare it with.
    unstored = replace(HOLD, checkout_id=None)
    assert payment_mismatches(unstored, paid_event(checkout_id="chk_2")) == []


def test_the_sale_window_is_half_open():
    tier = Tier(valid_from=NOW, valid_until=NOW + timedelta(days=1))
    assert not on_sale(tier, NOW - timedelta(seconds=1))
    assert on_sale(tier, NOW)
    assert on_sale(tier, NOW + timedelta(days=1) - timedelta(microseconds=1))
    assert not on_sale(tier, NOW + timedelta(days=1))
    assert on_sale(Tier(valid_from=None, valid_until=None), NOW)


def test_sqlite_engines_take_the_write_lock_at_begin(tmp_path):
    made = ledger_engine(f"sqlite:///{tmp_path}/a.db")
    assert event.contains(made, "begin", _on_begin)
    plain = create_engine(f"sqlite:///{tmp_path}/b.db")
    assert not event.contains(plain, "begin", _on_begin)
    serialise_sqlite_writers(plain)
    serialise_sqlite_writers(plain)  # installed once
    assert event.contains(plain, "begin", _on_begin)
    with plain.begin() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    made.dispose()
    plain.dispose()


def test_errors_carry_stable_codes():
    cause = PaymentServiceUnavailable("timeout", "no answer")
    unavailable = CheckoutUnavailable("down", cause)
    assert (unavailable.code, unavailable.error) == ("checkout_unavailable", cause)
    assert SoldOut("tier x").code == "sold_out" and str(SoldOut("tier x")) == "sold_out: tier x"
