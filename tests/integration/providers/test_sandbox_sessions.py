"""The sandbox adapter against the real sandbox PSP, over real HTTP on 127.0.0.1: sessions
and refunds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from payment_service.providers.base import (
    PaymentStatus,
    ProviderRejected,
    SessionState,
)
from payment_service.providers.sandbox import SandboxProvider
from tests.integration.providers.conftest import (
    NewRequest,
    Scripted,
    buyer_pays,
    make_provider,
    paid_payment,
)

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
