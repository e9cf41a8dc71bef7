"""The sandbox adapter against the real sandbox PSP, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from payment_service.providers.base import (
    EventKind,
    PaymentStatus,
    ProviderError,
    ProviderEvent,
    ProviderPayment,
    ProviderRejected,
    ProviderUnavailable,
    SessionRequest,
    SessionState,
    WebhookRejected,
)
from payment_service.providers.sandbox import SandboxProvider, sandbox_base_url
from payment_service.sandbox_psp.signature import HEADER, sign_webhook
from tests.integration.providers.conftest import (
    API_KEY,
    WEBHOOK_SECRET,
    Receiver,
    Scripted,
    buyer_pays,
    configure,
    make_provider,
)

NewRequest = Callable[..., SessionRequest]


def paid_payment(provider: SandboxProvider, new_request: NewRequest) -> ProviderPayment:
    session = provider.create_session(new_request())
    buyer_pays(session.redirect_url)
    payment = provider.retrieve_session(session.session_id).last_payment
    assert payment is not None
    return payment


# -- sessions ---------------------------------------------------------------------------------


def test_create_session_opens_a_hosted_page(
    provider: SandboxProvider, sandbox_url: str, new_request: NewRequest
) -> None:
    request = new_request(expires_at=datetime.now(UTC) + timedelta(minutes=30, microseconds=7))
    session = provider.create_session(request)
    assert session.session_id.startswith("sbs_")
    assert session.redirect_url == f"{sandbox_url}/pay/{session.session_id}"
    assert session.expires_at == request.expires_at.replace(microsecond=0)
    assert session.expires_at is not None and session.expires_at.tzinfo is UTC


def test_expires_at_is_sent_in_utc_whatever_its_zone(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    seoul = timezone(timedelta(hours=9))
    when = (datetime.now(seoul) + timedelta(minutes=10)).replace(microsecond=0)
    session = provider.create_session(new_request(expires_at=when))
    assert session.expires_at == when
    assert session.expires_at is not None and session.expires_at.tzinfo is UTC


def test_create_session_is_idempotent_under_its_key(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    request = new_request()
    first = provider.create_session(request)
    assert provider.create_session(request) == first
    other = provider.create_session(new_request())
    assert other.session_id != first.session_id
    reused = new_request(idempotency_key=request.idempotency_key)  # same key, another body
    with pytest.raises(ProviderRejected, match="idempotency_error"):
        provider.create_session(reused)


def test_an_invalid_session_request_is_rejected(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    with pytest.raises(ProviderRejected, match=r"HTTP 422: validation_error: .*currency"):
        provider.create_session(new_request(currency="XXX"))
    with pytest.raises(ValueError, match="timezone-aware"):
        provider.create_session(new_request(expires_at=datetime.now() + timedelta(minutes=5)))


def test_a_new_session_is_open_without_payment(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    session = provider.create_session(new_request())
    status = provider.retrieve_session(session.session_id)
    assert status.session_id == session.session_id
    assert status.state is SessionState.OPEN
    assert status.last_payment is None


def test_a_paid_session_is_complete_with_its_payment(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    request = new_request(amount=45000, currency="KRW")
    session = provider.create_session(request)
    before = datetime.now(UTC).replace(microsecond=0)
    redirect = buyer_pays(session.redirect_url)
    assert redirect.headers["Location"].endswith(f"session_id={session.session_id}")

    status = provider.retrieve_session(session.session_id)
    assert status.state is SessionState.COMPLETE
    payment = status.last_payment
    assert payment is not None
    assert payment.payment_id.startswith("sbp_")
    assert payment.status is PaymentStatus.SUCCEEDED
    assert (payment.amount, payment.currency) == (45000, "KRW")
    assert payment.tx_id is not None and payment.tx_id.startswith("sbtx_")
    assert payment.decline_code is None
    assert payment.session_id == session.session_id
    assert payment.reference == request.checkout_id
    assert payment.occurred_at.tzinfo is UTC
    assert before <= payment.occurred_at <= datetime.now(UTC)


def test_a_declined_attempt_leaves_the_session_open(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    session = provider.create_session(new_request())
    buyer_pays(session.redirect_url, "declined")
    status = provider.retrieve_session(session.session_id)
    assert status.state is SessionState.OPEN
    payment = status.last_payment
    assert payment is not None
    assert payment.status is PaymentStatus.DECLINED
    assert payment.decline_code == "card_declined"
    assert payment.tx_id is None

    buyer_pays(session.redirect_url, "succeeded")  # the buyer tries again
    retried = provider.retrieve_session(session.session_id)
    assert retried.state is SessionState.COMPLETE
    assert retried.last_payment is not None
    assert retried.last_payment.payment_id != payment.payment_id


def test_expire_closes_an_open_session_and_may_be_repeated(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    session = provider.create_session(new_request())
    provider.expire_session(session.session_id)
    assert provider.retrieve_session(session.session_id).state is SessionState.EXPIRED
    provider.expire_session(session.session_id)  # already expired: fine
    assert provider.retrieve_session(session.session_id).state is SessionState.EXPIRED


def test_expiring_a_paid_session_is_rejected(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    session = provider.create_session(new_request())
    buyer_pays(session.redirect_url)
    with pytest.raises(ProviderRejected, match="HTTP 409: invalid_state_error"):
        provider.expire_session(session.session_id)
    assert provider.retrieve_session(session.session_id).state is SessionState.COMPLETE


def test_an_unknown_session_is_rejected(provider: SandboxProvider) -> None:
    with pytest.raises(ProviderRejected, match="HTTP 404: not_found_error"):
        provider.retrieve_session("sbs_000000000000000000000000")
    with pytest.raises(ProviderRejected, match="HTTP 404"):
        provider.expire_session("sbs_000000000000000000000000")


@pytest.mark.parametrize("bad_id", ["", ".", "..", "../test/config", "sbs_1?x=1", "sbs 1", "é"])
def test_an_id_that_cannot_exist_never_reaches_a_url(scripted: Scripted, bad_id: str) -> None:
    with make_provider(scripted.url) as adapter:
        with pytest.raises(ProviderRejected, match="no such session"):
            adapter.retrieve_session(bad_id)
        with pytest.raises(ProviderRejected, match="no such session"):
            adapter.expire_session(bad_id)
        with pytest.raises(ProviderRejected, match="no such payment"):
            adapter.refund(bad_id, 100, idempotency_key="k", reason="r")
    assert scripted.requests == []


def test_the_mounted_sandbox_works_the_same(
    mounted_provider: SandboxProvider, mounted_public_url: str, new_request: NewRequest
) -> None:
    session = mounted_provider.create_session(new_request())
    assert session.redirect_url == (
        f"{mounted_public_url.rstrip('/')}/sandbox/pay/{session.session_id}"
    )
    buyer_pays(session.redirect_url)
    status = mounted_provider.retrieve_session(session.session_id)
    assert status.state is SessionState.COMPLETE


# -- refunds ----------------------------------------------------------------------------------


def test_refunds_are_partial_full_and_idempotent(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    payment = paid_payment(provider, new_request)
    first = provider.refund(payment.payment_id, 10000, idempotency_key="r-1", reason="Cancelled")
    assert first.refund_id.startswith("sbr_")
    assert (first.payment_id, first.amount, first.currency) == (payment.payment_id, 10000, "KRW")
    assert first.succeeded
    assert (
        provider.refund(payment.payment_id, 10000, idempotency_key="r-1", reason="Cancelled")
        == first
    )
    with pytest.raises(ProviderRejected, match="idempotency_error"):
        provider.refund(payment.payment_id, 500, idempotency_key="r-1", reason="Cancelled")
    with pytest.raises(ProviderRejected, match=r"HTTP 409: invalid_state_error: .*exceeds"):
        provider.refund(payment.payment_id, 20001, idempotency_key="r-2", reason="Too much")

    rest = provider.refund(payment.payment_id, 20000, idempotency_key="r-3", reason="x" * 600)
    assert rest.amount == 20000 and rest.refund_id != first.refund_id
    with pytest.raises(ProviderRejected, match="already fully refunded"):
        provider.refund(payment.payment_id, 1, idempotency_key="r-4", reason="")


def test_a_declined_or_unknown_payment_cannot_be_refunded(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    session = provider.create_session(new_request())
    buyer_pays(session.redirect_url, "declined")
    declined = provider.retrieve_session(session.session_id).last_payment
    assert declined is not None
    with pytest.raises(ProviderRejected, match="declined"):
        provider.refund(declined.payment_id, 100, idempotency_key="d-1", reason="r")
    with pytest.raises(ProviderRejected, match="HTTP 404: not_found_error"):
        provider.refund("sbp_000000000000000000000000", 100, idempotency_key="d-2", reason="r")
    with pytest.raises(ProviderRejected, match="HTTP 422"):
        provider.refund(declined.payment_id, 0, idempotency_key="d-3", reason="r")


# -- webhooks ---------------------------------------------------------------------------------


def signed(body: bytes, *, secret: str = WEBHOOK_SECRET, at: float | None = None) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    return {"Content-Type": "application/json", HEADER: sign_webhook(secret, stamp, body)}


def payment_event_body(event_type: str = "payment.succeeded", **payment: Any) -> bytes:
    succeeded = event_type == "payment.succeeded"
    obj = {
        "id": "sbp_aaaaaaaaaaaaaaaaaaaaaaaa",
        "object": "payment",
        "sessionId": "sbs_bbbbbbbbbbbbbbbbbbbbbbbb",
        "reference": "chk_1",
        "status": "succeeded" if succeeded else "declined",
        "amount": 30000,
        "currency": "KRW",
        "amountRefunded": 0,
        "txId": "sbtx_cccccccccccccccccccccccc" if succeeded else None,
        "declineCode": None if succeeded else "card_declined",
        "createdAt": "2027-03-01T09:30:00Z",
        **payment,
    }
    event = {"id": "sbe_1", "type": event_type, "created": 1_800_000_000, "data": {"object": obj}}
    return json.dumps(event, separators=(",", ":")).encode()


def test_a_signed_payment_event_is_parsed(provider: SandboxProvider) -> None:
    body = payment_event_body()
    event = provider.parse_webhook(body, signed(body))
    assert event == ProviderEvent(
        event_id="sbe_1",
        kind=EventKind.PAYMENT_SUCCEEDED,
        occurred_at=datetime(2027, 1, 15, 8, 0, tzinfo=UTC),
        payment=ProviderPayment(
            payment_id="sbp_aaaaaaaaaaaaaaaaaaaaaaaa",
            session_id="sbs_bbbbbbbbbbbbbbbbbbbbbbbb",
            reference="chk_1",
            status=PaymentStatus.SUCCEEDED,
            amount=30000,
            currency="KRW",
            tx_id="sbtx_cccccccccccccccccccccccc",
            decline_code=None,
            occurred_at=datetime(2027, 3, 1, 9, 30, tzinfo=UTC),
        ),
        session_id="sbs_bbbbbbbbbbbbbbbbbbbbbbbb",
    )
    assert event.occurred_at.tzinfo is UTC


def test_the_signature_header_is_found_in_any_case(provider: SandboxProvider) -> None:
    body = payment_event_body("payment.declined")
    header = signed(body)[HEADER]
    for name in (HEADER, HEADER.lower(), HEADER.upper()):
        event = provider.parse_webhook(body, {name: header})
        assert event.kind is EventKind.PAYMENT_DECLINED
        assert event.payment is not None and event.payment.decline_code == "card_declined"


def test_other_event_kinds_are_parsed(provider: SandboxProvider) -> None:
    refund = {
        "id": "sbr_1",
        "object": "refund",
        "paymentId": "sbp_1",
        "amount": 500,
        "currency": "KRW",
        "reason": None,
        "status": "succeeded",
        "createdAt": "2027-03-01T09:30:00Z",
    }
    bodies = {
        "refund.succeeded": {"object": refund},
        "session.expired": {"object": {"id": "sbs_9", "object": "session", "status": "expired"}},
        "payment.captured_someday": {"object": {"whatever": True}},
    }
    events = {}
    for event_type, data in bodies.items():
        raw = json.dumps(
            {"id": f"sbe_{event_type}", "type": event_type, "created": 1, "data": data}
        )
        events[event_type] = provider.parse_webhook(raw.encode(), signed(raw.encode()))

    refunded = events["refund.succeeded"]
    assert refunded.kind is EventKind.REFUND_SUCCEEDED and refunded.payment is None
    assert refunded.refund is not None
    assert (refunded.refund.refund_id, refunded.refund.payment_id) == ("sbr_1", "sbp_1")
    assert (refunded.refund.amount, refunded.refund.succeeded) == (500, True)
    expired = events["session.expired"]
    assert (expired.kind, expired.session_id) == (EventKind.SESSION_EXPIRED, "sbs_9")
    other = events["payment.captured_someday"]
    assert other.kind is EventKind.OTHER and other.event_id == "sbe_payment.captured_someday"
    assert other.occurred_at == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_forged_stale_or_unsigned_webhooks_are_rejected(provider: SandboxProvider) -> None:
    body = payment_event_body()
    good = signed(body)
    cases: dict[str, tuple[bytes, dict[str, str]]] = {
        "tampered body": (body.replace(b"30000", b"30"), good),
        "wrong secret": (body, signed(body, secret="sbx_whsec_dev")),
        "stale timestamp": (body, signed(body, at=time.time() - 3600)),
        "future timestamp": (body, signed(body, at=time.time() + 3600)),
        "missing header": (body, {"Content-Type": "application/json"}),
        "empty header": (body, {HEADER: ""}),
        "garbled header": (body, {HEADER: "v1=abc"}),
        "absurd timestamp": (body, {HEADER: f"t={'9' * 400},v1=abc"}),
    }
    for case, (raw, headers) in cases.items():
        with pytest.raises(WebhookRejected):
            provider.parse_webhook(raw, headers)
            pytest.fail(f"{case} was accepted")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'{"id": "sbe_1", "type": "payment.succeeded", "created": 1}',
        b'{"id": "sbe_1", "created": 1, "data": {}}',
        b'{"id": "sbe_1", "type": "session.expired", "created": "yesterday", "data": {}}',
        b'{"id": "sbe_1", "type": "session.expired", "created": 1, "data": {"object": {}}}',
        b'{"id": "sbe_1", "type": "refund.succeeded", "created": 1, "data": {"object": []}}',
        payment_event_body(amount="30000"),
        payment_event_body(amount=True),
        payment_event_body(status="pending"),
        payment_event_body(createdAt="2027-03-01T09:30:00"),  # no zone
        payment_event_body(createdAt="soon"),
        payment_event_body(createdAt="9999-12-31T23:59:59-01:00"),  # overflows in UTC
        b'{"id": "sbe_1", "type": "other", "created": 100000000000000000000, "data": {}}',
        payment_event_body("payment.declined", status="succeeded"),  # kind and status disagree
    ],
)
def test_a_correctly_signed_body_that_cannot_be_parsed_is_rejected(
    provider: SandboxProvider, body: bytes
) -> None:
    with pytest.raises(WebhookRejected, match="unparseable"):
        provider.parse_webhook(body, signed(body))


def test_real_webhooks_from_the_sandbox_parse(
    provider: SandboxProvider, receiver: Receiver, new_request: NewRequest
) -> None:
    declined = provider.create_session(new_request())
    buyer_pays(declined.redirect_url, "declined")
    payment = paid_payment(provider, new_request)
    refund = provider.refund(payment.payment_id, 700, idempotency_key="w-1", reason="r")
    expiring = provider.create_session(new_request())
    provider.expire_session(expiring.session_id)

    events = [provider.parse_webhook(r.body, r.headers) for r in receiver.wait_for(4)]
    by_kind = {event.kind: event for event in events}
    assert set(by_kind) == {
        EventKind.PAYMENT_DECLINED,
        EventKind.PAYMENT_SUCCEEDED,
        EventKind.REFUND_SUCCEEDED,
        EventKind.SESSION_EXPIRED,
    }
    assert len({event.event_id for event in events}) == 4
    assert by_kind[EventKind.PAYMENT_SUCCEEDED].payment == payment
    assert by_kind[EventKind.PAYMENT_SUCCEEDED].session_id == payment.session_id
    failed = by_kind[EventKind.PAYMENT_DECLINED].payment
    assert failed is not None and failed.session_id == declined.session_id
    assert by_kind[EventKind.REFUND_SUCCEEDED].refund == refund
    assert by_kind[EventKind.SESSION_EXPIRED].session_id == expiring.session_id


# -- failures at the boundary -----------------------------------------------------------------


def test_a_provider_that_is_down_is_unavailable(
    provider: SandboxProvider, sandbox_url: str, new_request: NewRequest
) -> None:
    payment = paid_payment(provider, new_request)
    session = provider.create_session(new_request())
    configure(sandbox_url, down=True)
    calls: dict[str, Callable[[], object]] = {
        "create": lambda: provider.create_session(new_request()),
        "retrieve": lambda: provider.retrieve_session(session.session_id),
        "expire": lambda: provider.expire_session(session.session_id),
        "refund": lambda: provider.refund(
            payment.payment_id, 100, idempotency_key="down-1", reason="r"
        ),
    }
    for call in calls.values():
        with pytest.raises(ProviderUnavailable, match="HTTP 503: api_error: sandbox is down"):
            call()
    configure(sandbox_url, down=False)
    assert provider.retrieve_session(session.session_id).state is SessionState.OPEN


def assert_nothing_chained(exc: BaseException) -> None:
    """Nothing from `requests` (which holds the request, key included) rides along."""
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_provider_is_unavailable_quickly(new_request: NewRequest) -> None:
    started = time.monotonic()
    with make_provider(f"http://127.0.0.1:{free_port()}", connect_timeout=0.5) as adapter:
        with pytest.raises(ProviderUnavailable, match="unreachable"):
            adapter.retrieve_session("sbs_1")
        with pytest.raises(ProviderUnavailable, match="unreachable"):
            adapter.create_session(new_request())
    assert time.monotonic() - started < 3


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def test_a_provider_that_does_not_answer_times_out(silent_port: int) -> None:
    started = time.monotonic()
    with (
        make_provider(f"http://127.0.0.1:{silent_port}", read_timeout=0.3) as adapter,
        pytest.raises(ProviderUnavailable, match="timed out"),
    ):
        adapter.retrieve_session("sbs_1")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("status", "body", "expected", "match"),
    [
        (500, "<h1>Internal Server Error</h1>", ProviderUnavailable, "HTTP 500$"),
        (502, {"error": {"type": "api_error", "message": "bad gateway"}}, ProviderUnavailable,
         "HTTP 502: api_error: bad gateway"),
        (429, {"error": {"type": "rate_limit_error", "message": "slow down"}},
         ProviderUnavailable, "HTTP 429: rate_limit_error"),
        (408, "", ProviderUnavailable, "HTTP 408"),
        (400, "<html>nope</html>", ProviderRejected, "HTTP 400$"),
        (403, {"error": "forbidden"}, ProviderRejected, "HTTP 403$"),
        (200, "<html>a captive portal</html>", ProviderUnavailable, "without a JSON object"),
        (200, [1, 2], ProviderUnavailable, "without a JSON object"),
        (200, {"id": "sbs_1", "status": "open"}, ProviderUnavailable, "malformed.*lastPayment"),
        (200, {"id": "sbs_1", "status": "paused", "lastPayment": None}, ProviderUnavailable,
         "malformed"),
        (200, {"id": "sbs_2", "status": "open", "lastPayment": None}, ProviderUnavailable,
         "not the session asked for"),
        (200, {"id": "sbs_1", "status": "open", "lastPayment": {"id": "sbp_1"}},
         ProviderUnavailable, "malformed.*sessionId"),
    ],
)  # fmt: skip
def test_answers_are_translated_at_the_boundary(
    scripted: Scripted, status: int, body: Any, expected: type[ProviderError], match: str
) -> None:
    scripted.answer(status, body)
    with make_provider(scripted.url) as adapter, pytest.raises(expected, match=match) as caught:
        adapter.retrieve_session("sbs_1")
    assert_nothing_chained(caught.value)


def test_malformed_create_and_refund_answers_are_unavailable(
    scripted: Scripted, new_request: NewRequest
) -> None:
    scripted.answer(201, {"id": "sbs_1", "url": "javascript:alert(1)", "expiresAt": None})
    scripted.answer(201, {"id": "sbs_1", "url": "https://psp.test/pay/sbs_1", "expiresAt": "x"})
    scripted.answer(201, {"id": "sbr_1", "paymentId": "sbp_1", "amount": "5", "currency": "KRW"})
    with make_provider(scripted.url) as adapter:
        with pytest.raises(ProviderUnavailable, match=r"malformed.*url"):
            adapter.create_session(new_request())
        with pytest.raises(ProviderUnavailable, match=r"malformed.*expiresAt"):
            adapter.create_session(new_request())
        with pytest.raises(ProviderUnavailable, match=r"malformed.*amount"):
            adapter.refund("sbp_1", 5, idempotency_key="k", reason="r")


def test_redirects_are_not_followed(scripted: Scripted) -> None:
    scripted.answer(302, "", Location=f"{scripted.url}/elsewhere")
    with make_provider(scripted.url) as adapter, pytest.raises(ProviderUnavailable, match="302"):
        adapter.retrieve_session("sbs_1")
    assert [path for _, path, _ in scripted.requests] == ["/api/sessions/sbs_1"]


def test_requests_carry_the_key_the_idempotency_key_and_json(
    scripted: Scripted, new_request: NewRequest
) -> None:
    request = new_request()
    scripted.answer(201, {"id": "sbs_1", "url": "https://psp.test/pay/sbs_1", "expiresAt": None})
    with make_provider(scripted.url + "/") as adapter:
        session = adapter.create_session(request)
    assert session.expires_at is None
    [(method, path, headers)] = scripted.requests
    assert (method, path) == ("POST", "/api/sessions")
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Idempotency-Key"] == request.idempotency_key
    assert headers["Content-Type"] == "application/json"


def test_the_api_key_never_appears_in_errors(
    sandbox_url: str, scripted: Scripted, new_request: NewRequest
) -> None:
    wrong_key = "sbx_not_the_key_987"
    with SandboxProvider(sandbox_url, wrong_key, WEBHOOK_SECRET) as wrong:
        with pytest.raises(ProviderRejected, match="HTTP 401: authentication_error") as rejected:
            wrong.retrieve_session("sbs_1")
        assert wrong_key not in str(rejected.value) + repr(rejected.value) + repr(wrong)
    raised: list[ProviderError] = [rejected.value]
    # A provider that echoes the key back still does not get it into a message.
    scripted.answer(400, {"error": {"type": "invalid_request_error", "message": API_KEY}})
    scripted.answer(503, {"error": {"type": "api_error", "message": f"Bearer {API_KEY}"}})
    with make_provider(scripted.url) as adapter:
        for expected in (ProviderRejected, ProviderUnavailable):
            with pytest.raises(expected, match=r"\[redacted\]") as echoed:
                adapter.retrieve_session("sbs_1")
            raised.append(echoed.value)
        assert API_KEY not in repr(adapter)
    with (
        make_provider(f"http://127.0.0.1:{free_port()}", connect_timeout=0.5) as adapter,
        pytest.raises(ProviderUnavailable) as unreachable,
    ):
        adapter.create_session(new_request())
    raised.append(unreachable.value)
    for exc in raised:
        assert API_KEY not in str(exc) and API_KEY not in repr(exc)
        assert_nothing_chained(exc)


def test_one_provider_serves_many_threads(
    provider: SandboxProvider, new_request: NewRequest
) -> None:
    requests_ = [new_request() for _ in range(16)]

    def create_and_read(request: SessionRequest) -> SessionState:
        session = provider.create_session(request)
        return provider.retrieve_session(session.session_id).state

    with ThreadPoolExecutor(max_workers=8) as pool:
        states = list(pool.map(create_and_read, requests_))
    assert states == [SessionState.OPEN] * 16


# -- construction -------------------------------------------------------------------------------


def test_sandbox_base_url_is_under_the_public_url() -> None:
    assert sandbox_base_url("https://pay.example") == "https://pay.example/sandbox"
    assert sandbox_base_url("https://pay.example/") == "https://pay.example/sandbox"


@pytest.mark.parametrize(
    ("base_url", "api_key", "secret", "options"),
    [
        ("127.0.0.1:8010", API_KEY, WEBHOOK_SECRET, {}),
        ("ftp://127.0.0.1", API_KEY, WEBHOOK_SECRET, {}),
        ("http://127.0.0.1:8010?x=1", API_KEY, WEBHOOK_SECRET, {}),
        ("http://127.0.0.1:8010", "", WEBHOOK_SECRET, {}),
        ("http://127.0.0.1:8010", API_KEY, "", {}),
        ("http://127.0.0.1:8010", API_KEY, WEBHOOK_SECRET, {"read_timeout": 0}),
    ],
)
def test_a_misconfigured_provider_is_refused(
    base_url: str, api_key: str, secret: str, options: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        SandboxProvider(base_url, api_key, secret, **options)


def test_a_session_passed_in_is_used_and_left_open(sandbox_url: str) -> None:
    with requests.Session() as http:
        adapter = SandboxProvider(sandbox_url, API_KEY, WEBHOOK_SECRET, session=http)
        with adapter, pytest.raises(ProviderRejected):
            adapter.retrieve_session("sbs_1")
        assert "Authorization" not in http.headers  # the key is sent per request
        assert http.get(f"{sandbox_url}/", timeout=5).status_code == 200  # still usable
