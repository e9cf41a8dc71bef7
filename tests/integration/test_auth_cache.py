"""API keys are looked up once and then served from a short per-process cache."""

from sqlalchemy import event

from tests.factories import make_merchant


def test_a_repeated_key_costs_no_database_query(app, client, db):
    creds = make_merchant(db)
    engine = app.extensions["payment_db"].engine
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert (
            client.get("/v1/ticket-checkouts?reservationId=r1", headers=creds.auth).status_code
            == 200
        )
        first = len(statements)
        assert (
            client.get("/v1/ticket-checkouts?reservationId=r1", headers=creds.auth).status_code
            == 200
        )
        second = len(statements) - first
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert sum("api_keys" in s for s in statements) == 1
    assert second < first


def test_a_wrong_key_is_never_cached(client, db):
    creds = make_merchant(db)
    bad = {"Authorization": creds.auth["Authorization"] + "x"}
    assert client.get("/v1/ticket-checkouts?reservationId=r1", headers=bad).status_code == 401
    assert client.get("/v1/ticket-checkouts?reservationId=r1", headers=bad).status_code == 401
