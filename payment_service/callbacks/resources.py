"""HTTP resources for /v1/events: a merchant's callback events, their deliveries, redelivery."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from payment_service.api import Blueprint
from payment_service.callbacks import operations
from payment_service.errors import InvalidState, NotFound
from payment_service.merchants.auth import current_merchant
from shared_contracts.events import (
    DeliveryStatus,
    EventListSchema,
    EventSchema,
    EventType,
    FindEventsQuerySchema,
)

blp = Blueprint(
    "events", __name__, url_prefix="/v1/events",
    description="The callbacks sent to your `callbackUrl`, how their delivery went, and "
    "redelivery. Every call needs `Authorization: Bearer <apiKey>`.",
)  # fmt: skip

EVENT_SCHEMA = EventSchema()
_DELIVERY_EXAMPLE = {
    "status": "dead", "attempts": 10, "lastStatusCode": 503, "lastError": None,
    "nextAttemptAt": None, "deliveredAt": None,
    "recentAttempts": [
        {"number": 10, "startedAt": "2026-11-25T10:05:00+00:00", "durationMs": 41,
         "statusCode": 503, "error": None},
    ],
}  # fmt: skip
_EVENT_EXAMPLE = {
    "eventId": "evt_Qm7TzL1cWn8RkP0sXe3DYb2a",
    "type": "ticket_payment.paid",
    "createdAt": "2026-11-22T10:03:12+00:00",
    "data": {
        "checkoutId": "chk_4Yb2Qm7TzL1cWn8RkP0sXe3D", "reservationId": "res_123",
        "eventId": "evt_42", "tierId": "tier_7", "paymentId": "pay_8sK2mQ4xT1vB7nL3cR9wZe0F",
        "provider": "sandbox", "txId": "sbtx_1f2e3d", "amount": 30000, "currency": "KRW",
        "paidAt": "2026-11-22T10:03:12Z", "metadata": {},
    },
    "delivery": _DELIVERY_EXAMPLE,
}  # fmt: skip
_REDELIVERED_EXAMPLE = {
    **_EVENT_EXAMPLE,
    "delivery": {
        **_DELIVERY_EXAMPLE, "status": "pending", "nextAttemptAt": "2026-11-25T12:00:00+00:00"
    },
}  # fmt: skip


def view(found: operations.EventView) -> dict[str, Any]:
    """The event in EventSchema's attribute names."""
    event, delivery = found.event, found.delivery
    status = DeliveryStatus(delivery.status)
    return {
        "event_id": event.id,
        "type": EventType(event.type),
        "created_at": event.created_at,
        "data": dict(event.payload.get("data") or {}),
        "delivery": {
            "status": status,
            "attempts": delivery.attempts,
            "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error,
            "next_attempt_at": delivery.next_attempt_at
            if status == DeliveryStatus.PENDING
            else None,
            "delivered_at": delivery.delivered_at,
            "recent_attempts": [
                {
                    "number": attempt.number,
                    "started_at": attempt.started_at,
                    "duration_ms": attempt.duration_ms,
                    "status_code": attempt.status_code,
                    "error": attempt.error,
                }
                for attempt in found.recent_attempts
            ],
        },
    }


@blp.route("")
class Events(MethodView):
    @blp.arguments(FindEventsQuerySchema, location="query")
    @blp.response(200, EventListSchema, example={"data": [_EVENT_EXAMPLE]})
    @blp.alt_response(401, description="`unauthenticated`")
    @blp.alt_response(422, description="`validation_error` (`details`: field -> messages)")
    @blp.doc(security=[{"bearerAuth": []}])
    def get(self, query: dict[str, str]) -> dict[str, Any]:
        """List the callback events of a checkout, in the order they were written

        Each event carries its delivery: status, attempts and the last few attempts' answers.
        Another merchant's checkout, like an unknown one, has no events: the list is empty.
        """
        found = operations.checkout_events(
            current_app.extensions["payment_db"], current_merchant().id, query["checkout_id"]
        )
        return {"data": [view(item) for item in found]}


@blp.route("/<string:event_id>/redeliver")
class RedeliverEvent(MethodView):
    @blp.response(202, EVENT_SCHEMA, example=_REDELIVERED_EXAMPLE)
    @blp.alt_response(401, description="`unauthenticated`")
    @blp.alt_response(404, description="`not_found` (also for another merchant's event)")
    @blp.alt_response(
        409,
        description="`invalid_state`: a `ticket_payment.paid` that you rejected, or whose "
        "payment was refunded, is never sent again",
    )
    @blp.doc(security=[{"bearerAuth": []}])
    def post(self, event_id: str) -> dict[str, Any]:
        """Send an event again (same `webhook-id`), now

        A dead, rejected or delivered event goes back to `pending`, due now; its attempts so
        far are kept, and a dead one gets one more attempt. An event still `pending` is left
        as it is (repeating the call is harmless). Your receiver must treat a repeated
        `webhook-id` as already handled.
        """
        try:
            replayed = operations.replay(
                current_app.extensions["payment_db"], event_id,
                merchant_id=current_merchant().id, force=True,
            )  # fmt: skip
        except operations.UnknownEvent:
            raise NotFound("No such event.") from None
        except operations.NotReplayable as exc:
            raise InvalidState(str(exc)) from None
        return view(replayed.view)
