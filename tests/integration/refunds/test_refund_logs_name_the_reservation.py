"""Every log line of a rejected payment's refund names its checkout and reservation (CONTRACT
§4: one grep by the reservation id, which is what support usually has, follows a payment from
the buyer's return to the money going back)."""

from __future__ import annotations

import json

import structlog

from tests.integration.refunds.conftest import REJECTION, Reply, World


def test_the_rejection_and_every_refund_line_name_the_reservation(world: World, log_stream):
    paid = world.pay()
    reservation_id = world.checkout(paid.checkout_id).reservation_id
    # The payment's request bound its ids in this thread's logging context; the worker that
    # delivers and refunds has nothing bound, so neither may the rest of this test.
    structlog.contextvars.clear_contextvars()
    world.receiver.script(Reply(409, REJECTION))
    assert world.deliver() == ["rejected"]
    assert world.refunds() == 1

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    story = [
        line for line in lines
        if line["event"] == "callback.paid_rejected" or line["event"].startswith("refund.")
    ]  # fmt: skip
    assert {line["event"] for line in story} >= {
        "callback.paid_rejected", "refund.requested", "refund.succeeded",
    }  # fmt: skip
    for line in story:
        assert (line.get("checkoutId"), line.get("reservationId")) == (
            paid.checkout_id, reservation_id,
        ), line  # fmt: skip
