"""The flask-smorest Api with project-wide behaviour: our error envelope, bearer auth."""

from __future__ import annotations

from typing import Any

import flask_smorest
from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, Request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from payment_service import errors
from shared_contracts.errors import ErrorEnvelopeSchema

API_SPEC = {
    "API_TITLE": "Ticket payment service",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/",
    "API_SPEC_OPTIONS": {
        "info": {
            "description": (
                "Event platforms delegate paid tickets to this service: create a checkout, "
                "send the buyer to `checkoutUrl`, and register the buyer when the signed "
                "`ticket_payment.paid` callback arrives. See CONTRACT.md for the whole contract."
            )
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    },
}


class _Parser(FlaskParser):
    """webargs' Flask parser, taking the JSON body from Flask's cache: guards.check_body has
    parsed it already, and webargs would parse the raw bytes a second time."""

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        body = req.get_json(silent=True, cache=True)
        # None: not JSON after all (or a JSON null); webargs parses and reports it as before.
        return body if body is not None else super()._raw_load_json(req)


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """The Blueprint of every API resource module: arguments parsed by `_Parser`."""

    ARGUMENTS_PARSER = _Parser()


class ErrorEnvelopePlugin(BasePlugin):  # type: ignore[misc]
    """Documents every 4xx and 5xx answer that has no body of its own as the error envelope:
    every non-2xx JSON answer of this service has that body (CONTRACT §3)."""

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        for operation in (operations or {}).values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            for status, response in responses.items():
                undocumented = isinstance(response, dict) and not {"content", "$ref"} & set(
                    response
                )
                if str(status)[:1] in "45" and undocumented:
                    response["content"] = {"application/json": {"schema": self._envelope()}}

    def _envelope(self) -> dict[str, Any]:
        [plugin] = [p for p in self.spec.plugins if isinstance(p, MarshmallowPlugin)]
        ref: dict[str, Any] = plugin.converter.resolve_nested_schema(ErrorEnvelopeSchema)
        return ref


class Api(flask_smorest.Api):  # type: ignore[misc]
    ERROR_SCHEMA = ErrorEnvelopeSchema

    def _register_error_handlers(self) -> None:
        errors.init_app(self._app)

    def handle_http_exception(self, error: Any) -> Any:
        return errors.handle_http_exception(error)


def create_api(app: Flask) -> Api:
    for key, value in API_SPEC.items():
        app.config.setdefault(key, value)
    return Api(app, spec_kwargs={"extra_plugins": [ErrorEnvelopePlugin()]})
