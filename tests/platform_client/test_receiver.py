"""mount_callback_endpoint in a Flask test app: verify, de-duplicate, hand on, answer."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient

from platform_client.callbacks import CallbackEvent, TicketPaymentPaid
from platform_client.receiver import InMemorySeenStore, RejectCallback, mount_callback_endpoint
from shared_contracts.events import EventType
from tests.platform_client.builders import OLD_SECRET, SECRET, callback_body, signed


@dataclass
class Handler:
    """Records events; ``outcomes`` are raised in turn (None: handled)."""

    events: list[CallbackEvent] = field(default_factory=list)
    outcomes: list[Exception | None] = field(default_factory=list)

    def __call__(self, event: CallbackEvent) -> None:
        self.events.append(event)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def web(handler: Handler) -> FlaskClient:
    app = Flask(__name__)
    hooks = Blueprint("hooks", __name__, url_prefix="/hooks")
    mount_callback_endpoint(
        hooks, "/ticket-payments", secrets=lambda: [SECRET, OLD_SECRET], handler=handler,
        seen=InMemorySeenStore(),
    )  # fmt: skip
    app.register_blueprint(hooks)
    return app.test_client()


def post(web: FlaskClient, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return web.post("/hooks/ticket-payments", data=body, headers=headers)


def test_a_valid_callback_is_handled_once(web: FlaskClient, handler: Handler) -> None:
    body = callback_body()
    response = post(web, body, signed(body))
    assert response.status_code == 204
    [event] = handler.events
    assert isinstance(event, TicketPaymentPaid) and event.event_id == "evt_abc"

    # A retry of the same event (new timestamp, same webhook-id) is acknowledged, not re-run.
    again = post(web, body, signed(body, [OLD_SECRET]))
    assert again.status_code == 200
    assert len(handler.events) == 1


def test_a_rejection_answers_its_status_with_the_error_envelope(
    web: FlaskClient, handler: Handler
) -> None:
    handler.outcomes.append(
        RejectCallback("reservation_expired", "The seat is gone.", details={"tierId": "tier_7"})
    )
    body = callback_body()
    response = post(web, body, signed(body))
    assert response.status_code == 409
    assert response.get_json() == {
        "error": {
            "code": "reservation_expired", "message": "The seat is gone.",
            "requestId": "req_1", "details": {"tierId": "tier_7"},
        }
    }  # fmt: skip


def test_a_rejection_status_outside_the_contract_is_refused() -> None:
    with pytest.raises(ValueError, match="409"):
        RejectCallback("nope", "nope", status=400)


def test_a_handler_crash_is_a_500_and_a_retry_runs_the_handler_again(
    web: FlaskClient, handler: Handler
) -> None:
    handler.outcomes.append(RuntimeError("database is down"))
    body = callback_body(EventType.EXPIRED)
    crashed = post(web, body, signed(body))
    assert crashed.status_code == 500
    assert crashed.get_json()["error"]["code"] == "internal_error"
    assert "database is down" not in crashed.get_data(as_text=True)

    assert post(web, body, signed(body)).status_code == 204
    assert len(handler.events) == 2


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body.replace(b"30000", b"1"), headers),
        lambda body, headers: (body, {**headers, "webhook-signature": "v1,Zm9yZ2Vk"}),
        lambda body, headers: (body, {"content-type": "application/json"}),
        lambda body, headers: (body, {**headers, "webhook-timestamp": "1000000000"}),
    ],
    ids=["tampered body", "forged signature", "no headers", "stale"],
)
def test_forged_callbacks_are_400_and_never_handled(
    web: FlaskClient, handler: Handler, tamper
) -> None:  # type: ignore[no-untyped-def]
    good = callback_body()
    body, headers = tamper(good, signed(good))
    response = post(web, body, headers)
    assert response.status_code == 400
    assert set(response.get_json()["error"]) == {"code", "message", "requestId", "details"}
    assert handler.events == []


def test_a_signed_malformed_body_is_400(web: FlaskClient, handler: Handler) -> None:
    body = b'{"type": "ticket_payment.paid"}'
    response = post(web, body, signed(body))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_payload"
    assert handler.events == []


def test_in_memory_seen_store_forgets_the_oldest_beyond_its_size() -> None:
    store = InMemorySeenStore(max_entries=2)
    for event_id in ("a", "b", "c"):
        store.remember(event_id)
    assert [store.seen(e) for e in ("a", "b", "c")] == [False, True, True]
