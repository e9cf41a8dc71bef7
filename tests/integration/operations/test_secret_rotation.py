"""Secret rotation end to end: during the grace period a callback carries one signature per
active secret and a receiver holding either secret verifies it; afterwards only the new one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payment_service.callbacks.dispatcher import attempt_delivery, claim_due
from payment_service.db import utcnow
from payment_service.merchants.services import rotate_secret
from shared_contracts.signing import InvalidSignature, verify
from tests.integration.callbacks.conftest import add_checkout, add_event


def test_callbacks_carry_both_signatures_until_the_grace_period_ends(db, receiver, platform):
    old = platform.signing_secret
    new, active = rotate_secret(db, platform.merchant_id, grace=timedelta(hours=1))
    assert [secret for secret, _ in active] == [new, old]
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())

    add_event(db, checkout_id)
    [claim] = claim_due(db, "w1")
    assert attempt_delivery(db, claim, allow_private=True, schedule=(0,)) == "delivered"
    during = receiver.received[-1]
    assert len(during.headers["webhook-signature"].split()) == 2
    verify(old, during.headers, during.body)  # a receiver not yet updated
    verify(new, during.headers, during.body)  # a receiver already updated

    add_event(db, checkout_id)
    after_grace = utcnow() + timedelta(hours=1, seconds=1)
    [claim] = claim_due(db, "w1", now=after_grace)
    assert attempt_delivery(db, claim, allow_private=True, schedule=(0,)) == "delivered"
    after = receiver.received[-1]
    assert len(after.headers["webhook-signature"].split()) == 1
    verify(new, after.headers, after.body)
    with pytest.raises(InvalidSignature):
        verify(old, after.headers, after.body)
