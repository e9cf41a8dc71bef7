"""Reading, finding and canceling checkouts; one live checkout per reservation; tenancy."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from payment_service.callbacks.models import CallbackEvent
from payment_service.checkouts.models import Checkout
from payment_service.db import utcnow


def set_status(db, checkout_id, **values):
    with db.transaction() as session:
        session.execute(update(Checkout).where(Checkout.id == checkout_id).values(**values))


def events(db):
    with db.transaction() as session:
        return session.scalars(select(CallbackEvent).order_by(CallbackEvent.seq)).all()


def test_get_returns_the_checkout(client, merchant, create):
    created = create().get_json()
    response = client.get(f"/v1/ticket-checkouts/{created['checkoutId']}", headers=merchant.auth)
    assert response.status_code == 200
    body = response.get_json()
    assert {k: body[k] for k in ("checkoutId", "status", "amount", "currency")} == {
        k: created[k] for k in ("checkoutId", "status", "amount", "currency")}  # fmt: skip


def test_find_by_reservation_lists_newest_first(client, merchant, create):
    first = create().get_json()["checkoutId"]
    client.post(f"/v1/ticket-checkouts/{first}/cancel", headers=merchant.auth)
    second = create().get_json()["checkoutId"]
    create(reservationId="res_other")
    found = client.get(
        "/v1/ticket-checkouts?reservationId=res_123", headers=merchant.auth
    ).get_json()
    assert [c["checkoutId"] for c in found["data"]] == [second, first]
    assert [c["status"] for c in found["data"]] == ["open", "canceled"]


def test_find_needs_a_reservation_id(client, merchant):
    response = client.get("/v1/ticket-checkouts", headers=merchant.auth)
    assert response.status_code == 422
    assert "reservationId" in response.get_json()["error"]["details"]


def test_second_live_checkout_for_a_reservation_is_409_with_the_existing_id(create):
    first = create().get_json()["checkoutId"]
    response = create()
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "checkout_exists"
    assert error["details"] == {"checkoutId": first}


def test_a_paid_checkout_also_blocks_a_new_one(create, db):
    first = create().get_json()["checkoutId"]
    set_status(db, first, status="paid", paid_at=utcnow())
    assert create().get_json()["error"]["details"] == {"checkoutId": first}


def test_cancel_moves_open_to_canceled_and_writes_one_event(client, merchant, create, db):
    checkout_id = create().get_json()["checkoutId"]
    url = f"/v1/ticket-checkouts/{checkout_id}/cancel"
    first = client.post(url, headers={**merchant.auth, "X-Request-ID": "req-cancel-1"})
    assert first.status_code == 200 and first.get_json()["status"] == "canceled"
    again = client.post(url, headers=merchant.auth)
    assert again.status_code == 200 and again.get_json()["status"] == "canceled"
    [event] = events(db)
    assert event.type == "ticket_payment.canceled"
    assert event.request_id == "req-cancel-1"
    assert event.payload["data"]["checkoutId"] == checkout_id
    assert event.payload["data"]["reservationId"] == "res_123"
    assert event.id.startswith("evt_")
    # A canceled reservation can be paid for again with a new checkout.
    assert create().status_code == 201


@pytest.mark.parametrize("status", ["paid", "refunded", "failed", "expired"])
def test_cancel_of_a_closed_checkout_is_409_invalid_state(client, merchant, create, db, status):
    checkout_id = create().get_json()["checkoutId"]
    set_status(db, checkout_id, status=status)
    response = client.post(f"/v1/ticket-checkouts/{checkout_id}/cancel", headers=merchant.auth)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "invalid_state"
    assert events(db) == []


def test_an_overdue_open_checkout_reads_as_expired_and_frees_its_reservation(
    client, merchant, create, db
):
    checkout_id = create().get_json()["checkoutId"]
    set_status(db, checkout_id, expires_at=utcnow() - timedelta(seconds=1))
    assert (
        client.get(f"/v1/ticket-checkouts/{checkout_id}", headers=merchant.auth).get_json()[
            "status"
        ]
        == "expired"
    )
    assert (
        client.post(f"/v1/ticket-checkouts/{checkout_id}/cancel", headers=merchant.auth).status_code
        == 409
    )
    assert create().status_code == 201  # the overdue one is expired (with its event) on the way
    assert [e.type for e in events(db)] == ["ticket_payment.expired"]


def test_an_overdue_checkout_with_a_provider_session_is_left_to_the_sweep(
    client, merchant, create, db
):
    """Its buyer may have paid there (the webhook lost, the tab closed): expiring it here would
    forget that payment, since only the sweep asks the provider. The new checkout waits."""
    checkout_id = create().get_json()["checkoutId"]
    set_status(db, checkout_id, expires_at=utcnow() - timedelta(seconds=1),
               provider_session_id="sbs_maybe_paid")  # fmt: skip
    refused = create()
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "checkout_exists"
    assert refused.get_json()["error"]["details"] == {"checkoutId": checkout_id}
    with db.transaction() as session:
        assert session.get(Checkout, checkout_id).status == "open"
    assert events(db) == []

    # Once the sweep has settled the session (closed, nothing paid), the reservation is free.
    set_status(db, checkout_id, provider_session_settled_at=utcnow())
    assert create().status_code == 201
    assert [e.type for e in events(db)] == ["ticket_payment.expired"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/v1/ticket-checkouts/{id}"), ("post", "/v1/ticket-checkouts/{id}/cancel")],
)
def test_another_merchants_checkout_is_404(client, create, other_merchant, db, method, path):
    checkout_id = create().get_json()["checkoutId"]
    response = getattr(client, method)(path.format(id=checkout_id), headers=other_merchant.auth)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    missing = getattr(client, method)(path.format(id="chk_missing"), headers=other_merchant.auth)
    assert missing.get_json()["error"]["message"] == response.get_json()["error"]["message"]
    with db.transaction() as session:
        assert session.get(Checkout, checkout_id).status == "open"


def test_find_never_shows_another_merchants_checkouts(client, create, other_merchant):
    create()
    found = client.get("/v1/ticket-checkouts?reservationId=res_123", headers=other_merchant.auth)
    assert found.status_code == 200 and found.get_json() == {"data": []}


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer sk_wrong", "Basic abc", "bearer  "])
def test_every_endpoint_needs_a_valid_key(client, create, header):
    checkout_id = create().get_json()["checkoutId"]
    headers = {"Authorization": header} if header else {}
    for method, path in [
        ("post", "/v1/ticket-checkouts"), ("get", f"/v1/ticket-checkouts/{checkout_id}"),
        ("get", "/v1/ticket-checkouts?reservationId=res_123"),
        ("post", f"/v1/ticket-checkouts/{checkout_id}/cancel"),
    ]:  # fmt: skip
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.get_json()["error"]["code"] == "unauthenticated"
