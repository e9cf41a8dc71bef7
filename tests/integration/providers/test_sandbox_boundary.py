"""The sandbox adapter at its boundary: a provider down, silent or answering nonsense, and
how the adapter is built."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from payment_service.providers.base import (
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    SessionRequest,
    SessionState,
)
from payment_service.providers.sandbox import SandboxProvider, sandbox_base_url
from tests.integration.providers.conftest import (
    API_KEY,
    WEBHOOK_SECRET,
    NewRequest,
    Scripted,
    configure,
    make_provider,
    paid_payment,
)

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
