"""Every (status, outcome) pair of the transition table, spelled out once more by hand."""

import pytest

from payment_service.checkouts.states import (
    TRANSITIONS,
    Outcome,
    decline_outcome,
    is_late,
    next_status,
)
from shared_contracts.checkouts import CheckoutStatus as S

EXPECTED = {
    S.OPEN: {Outcome.SUCCEEDED: S.PAID, Outcome.DECLINED: S.OPEN, Outcome.DECLINED_LAST: S.FAILED,
             Outcome.DEADLINE: S.EXPIRED, Outcome.CANCEL: S.CANCELED, Outcome.REFUND: None},
    S.PAID: {Outcome.SUCCEEDED: S.PAID, Outcome.DECLINED: S.PAID, Outcome.DECLINED_LAST: S.PAID,
             Outcome.DEADLINE: S.PAID, Outcome.CANCEL: None, Outcome.REFUND: S.REFUNDED},
    S.FAILED: {Outcome.SUCCEEDED: S.PAID, Outcome.DECLINED: S.FAILED, Outcome.DECLINED_LAST: S.FAILED,
               Outcome.DEADLINE: S.FAILED, Outcome.CANCEL: None, Outcome.REFUND: None},
    S.EXPIRED: {Outcome.SUCCEEDED: S.PAID, Outcome.DECLINED: S.EXPIRED, Outcome.DECLINED_LAST: S.EXPIRED,
                Outcome.DEADLINE: S.EXPIRED, Outcome.CANCEL: None, Outcome.REFUND: None},
    S.CANCELED: {Outcome.SUCCEEDED: S.PAID, Outcome.DECLINED: S.CANCELED, Outcome.DECLINED_LAST: S.CANCELED,
                 Outcome.DEADLINE: S.CANCELED, Outcome.CANCEL: S.CANCELED, Outcome.REFUND: None},
    S.REFUNDED: {Outcome.SUCCEEDED: S.REFUNDED, Outcome.DECLINED: S.REFUNDED, Outcome.DECLINED_LAST: S.REFUNDED,
                 Outcome.DEADLINE: S.REFUNDED, Outcome.CANCEL: None, Outcome.REFUND: S.REFUNDED},
}  # fmt: skip

PAIRS = [(status, outcome) for status in S for outcome in Outcome]


def test_the_table_covers_every_pair_and_nothing_else():
    assert set(TRANSITIONS) == set(PAIRS)


@pytest.mark.parametrize(("status", "outcome"), PAIRS)
def test_transition(status, outcome):
    assert next_status(status, outcome) == EXPECTED[status][outcome]


@pytest.mark.parametrize("outcome", list(Outcome))
def test_paid_never_goes_back_to_open_expired_or_failed(outcome):
    assert next_status(S.PAID, outcome) not in (S.OPEN, S.EXPIRED, S.FAILED)


@pytest.mark.parametrize(("status", "late"), [(S.OPEN, False), (S.PAID, False), (S.EXPIRED, True),
                                              (S.CANCELED, True), (S.FAILED, True)])  # fmt: skip
def test_late_payments(status, late):
    assert is_late(status, Outcome.SUCCEEDED) is late


@pytest.mark.parametrize(("before", "maximum", "outcome"), [(0, 3, Outcome.DECLINED), (1, 3, Outcome.DECLINED),
                                                            (2, 3, Outcome.DECLINED_LAST), (0, 1, Outcome.DECLINED_LAST)])  # fmt: skip
def test_the_last_allowed_decline_fails_the_checkout(before, maximum, outcome):
    assert decline_outcome(before, maximum) == outcome
