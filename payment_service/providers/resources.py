"""Provider webhooks: POST /v1/providers/{provider}/webhooks, verified on the raw body."""

from __future__ import annotations

from typing import Any

import structlog
from flask import current_app, g, request
from flask.views import MethodView

from payment_service.api import Blueprint
from payment_service.errors import InvalidSignature, NotFound
from payment_service.payments.services import record_provider_event
from payment_service.providers.base import WebhookRejected

log = structlog.get_logger(__name__)
blp = Blueprint(
    "providers", __name__, url_prefix="/v1/providers",
    description="Webhooks from payment providers (not for platforms). Each is verified with the "
    "provider's signature on the raw body before anything is parsed or stored.",
)  # fmt: skip


@blp.route("/<string:provider>/webhooks")
class ProviderWebhooks(MethodView):
    @blp.response(200)
    @blp.alt_response(400, description="invalid_signature: unsigned, forged, stale or unparseable")
    @blp.alt_response(404, description="not_found: no such provider")
    def post(self, provider: str) -> dict[str, Any]:
        """Receive a provider webhook (repeats answer 200 and change nothing)"""
        registry = current_app.extensions["payment_providers"]
        if provider not in registry:
            raise NotFound("No such provider.")
        try:
            event = registry.get(provider).parse_webhook(
                request.get_data(cache=False), request.headers
            )
        except WebhookRejected as exc:
            log.warning("provider_webhook.rejected", provider=provider, reason=str(exc))
            raise InvalidSignature() from None
        settings = current_app.extensions["payment_settings"]
        stored = record_provider_event(
            current_app.extensions["payment_db"], provider, event,
            max_attempts=settings.max_payment_attempts, request_id=g.request_id,
        )  # fmt: skip
        log.info("provider_webhook.received", provider=provider, providerEventId=event.event_id,
                 kind=event.kind.value, duplicate=not stored)  # fmt: skip
        return {"received": True, "duplicate": not stored}
