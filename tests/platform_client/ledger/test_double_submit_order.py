"""A double submit whose two create calls end in either order, against a scripted service: the
first submit's fails, the repeat's succeeds. No buyer is sent to pay for a released hold, and
no hold with a stored checkout is released under it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from platform_client.client import PaymentServiceClient
from platform_client.errors import PaymentServiceError, PaymentServiceUnavailable
from platform_client.ledger import (
    CheckoutUnavailable,
    Ledger,
    RegistrationStarted,
    Reservation,
    ReservationStatus,
)
from tests.platform_client.ledger.conftest import CONFIG, Clock
from tests.platform_client.ledger.helpers import EVENT, FULL, seed, taken
from tests.platform_client.servers import CHECKOUT, Answer, Script, envelope, scripted_service

Outcome = RegistrationStarted | BaseException


@pytest.fixture
def service() -> Iterator[Script]:
    with scripted_service() as script:
        yield script


@pytest.fixture
def scripted_ledger(engine: Engine, service: Script, clock: Clock) -> Iterator[Ledger]:
    # No client retries: each submit's create is one request, answered in the script's order.
    with PaymentServiceClient(service.url, "pk_test", retries=0) as client:
        ledger = Ledger(engine, client, CONFIG, clock=clock)
        seed(ledger)
        yield ledger


def unavailable(delay: float) -> Answer:
    return Answer(503, envelope("provider_unavailable"), delay=delay)


def checkout(reservation_id: str, delay: float = 0.0, status: str = "open") -> Answer:
    body = {**CHECKOUT, "checkoutId": "chk_b", "reservationId": reservation_id, "status": status,
            "checkoutUrl": "https://pay.example/checkout/chk_b?t=b"}  # fmt: skip
    return Answer(201 if status == "open" else 200, json.dumps(body).encode(), delay=delay)


def _outcome(future: Future[RegistrationStarted]) -> Outcome:
    try:
        return future.result(timeout=30)
    except Exception as exc:  # the test asserts on it
        return exc


def double_submit(
    ledger: Ledger, service: Script, first: Answer, then: Callable[[str], list[Answer]]
) -> tuple[Outcome, Outcome]:
    """Submit A (it makes the hold); once A's create call has reached the service, submit B
    (the same user: it finds A's hold). The service answers A with ``first`` and then, in
    order of arrival, ``then(reservation_id)``: B's create, and any call after it."""
    service.answers.append(first)
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(ledger.start_registration, "u_1", EVENT, FULL, {})
        deadline = time.monotonic() + 10
        while not service.seen:
            assert time.monotonic() < deadline, "A's create never reached the service"
            time.sleep(0.005)
        service.answers.extend(then(json.loads(service.seen[0].body)["reservationId"]))
        b = pool.submit(ledger.start_registration, "u_1", EVENT, FULL, {})
        return _outcome(a), _outcome(b)


def hold_row(engine: Engine) -> tuple[ReservationStatus, str | None, str | None]:
    with Session(engine) as session:
        [row] = session.execute(
            select(Reservation.status, Reservation.checkout_id, Reservation.checkout_url)
        ).all()
        return row.status, row.checkout_id, row.checkout_url


def test_a_checkout_created_after_the_first_submit_released_the_hold_is_canceled_not_returned(
    scripted_ledger: Ledger, engine: Engine, service: Script
):
    """A's create fails after 0.5 s and A releases the hold; B's (same key) succeeds after 1 s.
    B must not send the buyer to pay for the released hold: it cancels its checkout."""
    a, b = double_submit(
        scripted_ledger, service, unavailable(0.5),
        lambda reservation_id: [checkout(reservation_id, delay=1.0),
                                checkout(reservation_id, status="canceled")],
    )  # fmt: skip
    assert isinstance(a, CheckoutUnavailable), a
    assert isinstance(a.error, PaymentServiceUnavailable)
    assert isinstance(b, CheckoutUnavailable), b
    assert hold_row(engine) == (ReservationStatus.RELEASED, None, None)
    assert taken(engine, FULL) == 0
    assert [(seen.method, seen.path) for seen in service.seen[1:]] == [
        ("POST", "/v1/ticket-checkouts"),
        ("POST", "/v1/ticket-checkouts/chk_b/cancel"),
    ]


def test_a_failed_cancel_is_logged_and_the_submit_still_fails_as_unavailable(
    scripted_ledger: Ledger, engine: Engine, service: Script, caplog: pytest.LogCaptureFixture
):
    a, b = double_submit(
        scripted_ledger, service, unavailable(0.5),
        lambda reservation_id: [checkout(reservation_id, delay=1.0), unavailable(0)],
    )  # fmt: skip
    assert isinstance(a, CheckoutUnavailable) and isinstance(b, CheckoutUnavailable), (a, b)
    assert not isinstance(b, PaymentServiceError)
    failed = [r for r in caplog.records if r.getMessage() == "ledger.checkout_cancel_failed"]
    assert [(r.checkout_id, r.code) for r in failed] == [("chk_b", "provider_unavailable")]
    assert hold_row(engine) == (ReservationStatus.RELEASED, None, None)
    assert service.seen[-1].path == "/v1/ticket-checkouts/chk_b/cancel"


def test_a_hold_that_got_the_repeats_checkout_is_not_released_by_the_first_submits_failure(
    scripted_ledger: Ledger, engine: Engine, service: Script
):
    """The other order: B's create succeeds after 0.2 s and B stores and returns its checkout;
    A's fails after 1 s (a gateway's 503 while the service went on). A must not release the
    hold B's buyer is paying for: it answers with that checkout too."""
    a, b = double_submit(
        scripted_ledger, service, unavailable(1.0),
        lambda reservation_id: [checkout(reservation_id, delay=0.2)],
    )  # fmt: skip
    assert isinstance(b, RegistrationStarted), b
    assert (b.checkout_id, b.checkout_url) == ("chk_b", "https://pay.example/checkout/chk_b?t=b")
    assert a == b
    assert hold_row(engine) == (ReservationStatus.PENDING_PAYMENT, b.checkout_id, b.checkout_url)
    assert taken(engine, FULL) == 1
    assert len(service.seen) == 2  # nothing canceled
