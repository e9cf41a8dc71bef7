"""Races with real threads on both databases, each beside a control that removes its guard."""

import functools
import time
from collections import Counter

from sqlalchemy import func, select

from payment_service.checkouts import at_once, resources
from payment_service.checkouts import services as checkout_services
from payment_service.checkouts.models import Checkout
from payment_service.idempotency.services import run_idempotent
from payment_service.rawsql import Statement
from tests.factories import checkout_payload
from tests.races import race, without_index

THREADS = 50


def post_all(app, merchant, *, same_key: bool):
    body = checkout_payload()

    def work(i):
        key = "the-key" if same_key else f"key-{i}"
        response = app.test_client().post(
            "/v1/ticket-checkouts", json=body, headers={**merchant.auth, "Idempotency-Key": key}
        )
        error = (response.get_json() or {}).get("error") or {}
        return (
            response.status_code,
            error.get("code"),
            response.headers.get("Idempotent-Replayed"),
            response,
        )

    return race(THREADS, work)


def widen_the_window(monkeypatch, db):
    """Controls on PostgreSQL: 50 ms between a request's checks and its commit, so that the
    harness races however fast a request is. The usual create is one statement
    (at_once.create_at_once): it sleeps inside, between its snapshot and its end; the general
    path sleeps after its insert. (SQLite's single writer runs one at a time.)"""
    if not db.is_postgresql:
        return
    original = checkout_services.create_checkout

    def slow_create(*args, **kwargs):
        checkout = original(*args, **kwargs)
        time.sleep(0.05)
        return checkout

    slow_statements = {
        lock: Statement(at_once._create_at_once(lock, pause=0.05)) for lock in (True, False)
    }
    monkeypatch.setattr(checkout_services, "create_checkout", slow_create)
    monkeypatch.setattr(at_once, "_CREATE_AT_ONCE", slow_statements)


def checkouts(db):
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(Checkout))


def test_one_idempotency_key_from_50_threads_creates_one_checkout(app, merchant, db):
    results = post_all(app, merchant, same_key=True)
    outcomes = Counter((status, code, replayed) for status, code, replayed, _ in results)
    assert checkouts(db) == 1
    assert outcomes[(201, None, None)] == 1  # exactly one request ran
    assert set(outcomes) <= {
        (201, None, None),
        (201, None, "true"),
        (409, "idempotency_key_in_use", None),
    }
    bodies = {r.data for status, _, _, r in results if status == 201}
    assert len(bodies) == 1  # every 201 is the first answer, byte for byte


def test_control_without_the_key_guard_the_same_harness_runs_the_request_many_times(
    app, merchant, db, monkeypatch
):
    """The guard is the advisory lock on the key (PostgreSQL) with the unique index behind it;
    for one body the live-reservation index stops a second checkout too. Without all three,
    PostgreSQL runs the request in several threads. SQLite: its single writer (BEGIN
    IMMEDIATE) serialises the whole request, so even without the indexes only the first runs;
    that lock is SQLite's guard."""
    monkeypatch.setattr(resources, "run_idempotent", functools.partial(run_idempotent, lock=False))
    monkeypatch.setattr(
        at_once,
        "create_at_once",
        functools.partial(at_once.create_at_once, lock=False),
    )
    widen_the_window(monkeypatch, db)
    clear = ["idempotency_keys", "checkouts"]
    with (
        without_index(
            db, "idempotency_keys", "uq_idempotency_keys_merchant_key", clear_first=clear
        ),
        without_index(db, "checkouts", "uq_checkouts_live_reservation", clear_first=clear),
    ):
        results = post_all(app, merchant, same_key=True)
        executed = [
            r
            for r in results
            if r[2] is None and r[0] in (201, 409) and r[1] != "idempotency_key_in_use"
        ]
        outcomes = Counter((s, c, rp) for s, c, rp, _ in results)
        if db.is_postgresql:
            assert len(executed) > 1, outcomes
        else:
            assert len(executed) == 1, outcomes


def test_one_reservation_from_50_threads_with_different_keys_creates_one_checkout(
    app, merchant, db
):
    results = post_all(app, merchant, same_key=False)
    created = [r.get_json()["checkoutId"] for status, _, _, r in results if status == 201]
    assert len(created) == 1 and checkouts(db) == 1
    losers = [r for status, _, _, r in results if status != 201]
    assert len(losers) == THREADS - 1
    for response in losers:
        error = response.get_json()["error"]
        assert (response.status_code, error["code"]) == (409, "checkout_exists")
        assert error["details"] == {"checkoutId": created[0]}


def test_control_without_the_live_reservation_index(app, merchant, db, monkeypatch):
    """PostgreSQL: without the partial unique index the check-then-insert races and several
    checkouts appear. SQLite: its single writer (BEGIN IMMEDIATE) serialises the check and the
    insert, so even without the index there is one; that lock is SQLite's guard."""
    widen_the_window(monkeypatch, db)
    with without_index(
        db,
        "checkouts",
        "uq_checkouts_live_reservation",
        clear_first=["idempotency_keys", "checkouts"],
    ):
        post_all(app, merchant, same_key=False)
        if db.is_postgresql:
            assert checkouts(db) > 1
        else:
            assert checkouts(db) == 1
