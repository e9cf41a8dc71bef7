"""POST /v1/ticket-checkouts: the answer's shape, every validation rule and the URL rules."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from payment_service.callbacks.models import CallbackEvent
from payment_service.checkouts.models import Checkout
from payment_service.checkouts.tokens import token_is_valid
from tests.factories import checkout_payload


def iso(dt):
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_created_checkout_has_the_contract_shape(create, settings, db):
    before = datetime.now(UTC)
    response = create()
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == "open"
    assert body["checkoutId"].startswith("chk_") and len(body["checkoutId"]) >= 4 + 22
    assert (body["reservationId"], body["amount"], body["currency"], body["provider"]) == (
        "res_123", 30000, "KRW", "sandbox")  # fmt: skip
    expires = datetime.fromisoformat(body["expiresAt"])
    assert timedelta(minutes=14) < expires - before <= timedelta(minutes=15, seconds=1)
    url = urlsplit(body["checkoutUrl"])
    assert f"{url.scheme}://{url.netloc}" == settings.public_url
    assert url.path == f"/checkout/{body['checkoutId']}"
    assert token_is_valid(settings.secret_key, body["checkoutId"], parse_qs(url.query)["t"][0])
    assert not token_is_valid(settings.secret_key, "chk_other", parse_qs(url.query)["t"][0])
    assert body["paidAt"] is None and body["payment"] is None
    assert "Idempotent-Replayed" not in response.headers
    with db.transaction() as session:  # creating writes no callback event
        assert session.scalar(select(func.count()).select_from(CallbackEvent)) == 0


def test_explicit_expiry_and_optional_fields_are_kept(create):
    expires = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    body = create(
        expiresAt=iso(expires), paymentMethodFamily="easy_pay", metadata={"bib": "A-17"}
    ).get_json()
    assert datetime.fromisoformat(body["expiresAt"]) == expires
    assert body["paymentMethodFamily"] == "easy_pay"
    assert body["metadata"] == {"bib": "A-17"}


def test_customer_is_optional(create):
    payload = checkout_payload()
    del payload["customer"]
    assert create(payload).status_code == 201


def test_missing_idempotency_key_is_400(create):
    response = create(key=None)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "idempotency_key_missing"
    assert create(key="k" * 256).get_json()["error"]["code"] == "idempotency_key_missing"
    assert create(key="k" * 255).status_code == 201


def _later(**delta):
    return iso(datetime.now(UTC) + timedelta(**delta))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": 30000.0}, "amount"),
        ({"amount": "30000"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": None}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 100_000_000}, "amount"),
        ({"currency": "krw"}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"currency": 410}, "currency"),
        ({"orderName": ""}, "orderName"),
        ({"orderName": "x" * 201}, "orderName"),
        ({"reservationId": ""}, "reservationId"),
        ({"customer": {"email": "not-an-email"}}, "customer"),
        ({"customer": {"phone": "call me"}}, "customer"),
        ({"expiresAt": "2026-11-22T10:10:00"}, "expiresAt"),
        ({"expiresAt": "tomorrow"}, "expiresAt"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
        ({"metadata": {"k" * 41: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 501}}, "metadata"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"paymentMethodFamily": "cash"}, "paymentMethodFamily"),
        ({"unexpected": 1}, "unexpected"),
        ({"provider": "nope"}, "provider"),
    ],
)
def test_invalid_fields_are_422_with_details(create, overrides, field):
    response = create(**overrides)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"], error["details"]


@pytest.mark.parametrize("delta", [{"seconds": 30}, {"hours": 25}, {"minutes": -5}])
def test_expiry_outside_60s_to_24h_is_422(create, delta):
    response = create(expiresAt=_later(**delta))
    assert response.status_code == 422
    assert "expiresAt" in response.get_json()["error"]["details"]


def test_expiry_bounds_are_inclusive_enough(create):
    assert create(expiresAt=_later(seconds=65)).status_code == 201
    assert create(reservationId="res_2", expiresAt=_later(hours=23, minutes=59)).status_code == 201


def test_every_problem_is_reported_at_once(create):
    payload = checkout_payload(amount=1.5, currency="usd")
    del payload["orderName"]
    details = create(payload).get_json()["error"]["details"]
    assert {"amount", "currency", "orderName"} <= set(details)


def test_amount_bounds_are_accepted(create):
    assert create(amount=1).status_code == 201
    assert create(reservationId="res_max", amount=99_999_999).status_code == 201


def test_body_must_be_an_object(create):
    response = create([1, 2])
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "url",
    [
        "https://platform.example@evil.example/x",
        "//evil.example/x",
        "javascript:alert(1)",
        "https://platform.example.evil.com/x",
        "https://evil-platform.example/x",
        "https://platform.example:8443/x",
        "http://platform.example/x",
        "https:\\\\evil.example",
        "https://evil.example\\@platform.example/",
        "/relative/path",
        "ftp://platform.example/x",
        "data:text/html,hi",
    ],
)
@pytest.mark.parametrize("field", ["successUrl", "cancelUrl", "callbackUrl"])
def test_url_bypasses_are_refused(create, db, field, url):
    response = create(**{field: url})
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "url_not_allowed"
    assert list(error["details"]) == [field]
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Checkout)) == 0


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "[::1]", "[::ffff:127.0.0.1]",
     "[64:ff9b::a00:1]", "[2002:7f00:1::1]", "2130706433", "0x7f000001", "0177.0.0.1", "127.1",
     "localhost", "hooks.internal-rebind.example"],
)  # fmt: skip
def test_callback_hosts_that_are_or_resolve_to_private_addresses_are_refused(
    client, db, create, host
):
    from tests.factories import make_merchant

    creds = make_merchant(db, name="Private", origins=(f"https://{host}",))
    response = create(
        callbackUrl=f"https://{host}/hooks", successUrl=f"https://{host}/ok", cancelUrl=f"https://{host}/no",
        creds=creds,
    )  # fmt: skip
    assert response.status_code == 422, response.get_data(as_text=True)
    assert list(response.get_json()["error"]["details"]) == ["callbackUrl"]


def test_private_callbacks_are_allowed_when_configured(app, client, db, create):
    from dataclasses import replace

    from tests.factories import make_merchant

    app.extensions["payment_policy"] = replace(
        app.extensions["payment_policy"], allow_private_callbacks=True
    )
    creds = make_merchant(db, name="Local", origins=("http://127.0.0.1:8001",), allow_http=True)
    response = create(
        callbackUrl="http://127.0.0.1:8001/hooks", successUrl="http://127.0.0.1:8001/ok",
        cancelUrl="http://127.0.0.1:8001/no", creds=creds,
    )  # fmt: skip
    assert response.status_code == 201, response.get_data(as_text=True)


def test_urls_on_the_allowlist_pass_in_any_case_and_default_port(create):
    response = create(successUrl="HTTPS://PLATFORM.EXAMPLE:443/ok?x=1#top")
    assert response.status_code == 201
