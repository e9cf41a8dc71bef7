"""verify_redirect: the signed checkoutId/status on a buyer's return URL."""

from __future__ import annotations

import pytest

from platform_client.errors import InvalidSignature
from platform_client.redirects import RedirectStatus, verify_redirect
from shared_contracts.signing import sign_redirect
from tests.platform_client.builders import OLD_SECRET, SECRET


@pytest.mark.parametrize("status", list(RedirectStatus))
def test_a_signed_redirect_gives_its_checkout_and_status(status: RedirectStatus) -> None:
    query = {
        "checkoutId": "chk_1",
        "status": status.value,
        "sig": sign_redirect(SECRET, "chk_1", status),
    }
    result = verify_redirect(query, SECRET)
    assert (result.checkout_id, result.status) == ("chk_1", status)


def test_any_active_secret_verifies() -> None:
    query = {
        "checkoutId": "chk_1",
        "status": "paid",
        "sig": sign_redirect(OLD_SECRET, "chk_1", "paid"),
    }
    assert verify_redirect(query, [SECRET, OLD_SECRET]).status is RedirectStatus.PAID


@pytest.mark.parametrize(
    "query",
    [
        {"checkoutId": "chk_1", "status": "paid"},
        {"checkoutId": "chk_1", "status": "paid", "sig": ""},
        {"checkoutId": "chk_1", "status": "paid", "sig": "forged"},
        {"checkoutId": "chk_2", "status": "paid", "sig": sign_redirect(SECRET, "chk_1", "paid")},
        {
            "checkoutId": "chk_1",
            "status": "paid",
            "sig": sign_redirect(SECRET, "chk_1", "canceled"),
        },
        {
            "checkoutId": "chk_1",
            "status": "paid",
            "sig": sign_redirect(OLD_SECRET, "chk_1", "paid"),
        },
        {
            "checkoutId": "chk_1",
            "status": "refunded",
            "sig": sign_redirect(SECRET, "chk_1", "refunded"),
        },
        {"status": "paid", "sig": sign_redirect(SECRET, "", "paid")},
    ],
)
def test_missing_forged_or_unknown_redirects_are_refused(query: dict[str, str]) -> None:
    with pytest.raises(InvalidSignature):
        verify_redirect(query, SECRET)
