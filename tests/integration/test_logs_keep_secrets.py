"""The logs of a whole request cycle carry request ids and never a key, secret or e-mail."""

import json

from tests.factories import checkout_payload, make_merchant


def test_a_full_cycle_logs_ids_but_no_secrets(app, client, db, log_stream):
    creds = make_merchant(db)
    headers = {**creds.auth, "Idempotency-Key": "log-1", "X-Request-ID": "req-log-1"}
    created = client.post("/v1/ticket-checkouts", json=checkout_payload(), headers=headers)
    assert created.status_code == 201
    checkout_id = created.get_json()["checkoutId"]
    client.post("/v1/ticket-checkouts", json=checkout_payload(), headers=headers)  # replay
    client.get(f"/v1/ticket-checkouts/{checkout_id}", headers=creds.auth)
    client.post(f"/v1/ticket-checkouts/{checkout_id}/cancel", headers=creds.auth)
    client.post("/v1/ticket-checkouts", json={"amount": 1.5}, headers=headers)  # 422
    client.get(
        "/v1/ticket-checkouts?reservationId=x", headers={"Authorization": "Bearer sk_" + "z" * 43}
    )  # 401

    text = log_stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    requests_logged = [line for line in lines if line["event"] == "http.request"]
    assert len(requests_logged) == 6
    assert (
        requests_logged[0]["requestId"] == "req-log-1"
        and requests_logged[0]["merchantId"] == creds.merchant_id
    )
    assert all(
        {"method", "path", "status", "duration_ms", "requestId"} <= set(line)
        for line in requests_logged
    )
    for secret in (
        creds.api_key,
        creds.signing_secret,
        "Bearer",
        "sk_" + "z" * 43,
        "kim@example.com",
    ):
        assert secret not in text


def test_an_exception_logged_with_secrets_in_it_is_scrubbed(log_stream):
    import structlog

    try:
        raise RuntimeError(
            "failed for Bearer sk_abcdefghijklmnopqrstuvwxyz0123 and kim@example.com"
        )
    except RuntimeError:
        structlog.get_logger("t").exception(
            "boom", authorization="Bearer x", signing_secret="whsec_x"
        )
    text = log_stream.getvalue()
    assert "sk_abcdefghijklmnopqrstuvwxyz0123" not in text and "kim@example.com" not in text
    assert "whsec_x" not in text and "Bearer x" not in text
    assert "k***@example.com" in text
