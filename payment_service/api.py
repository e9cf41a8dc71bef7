"""The flask-smorest Api with project-wide behaviour: our error envelope, bearer auth."""

from __future__ import annotations

from typing import Any

import flask_smorest
from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, Request
from marshmallow import fields as ma_fields
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from payment_service import errors
from shared_contracts import request_ids
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


_REQUEST_ID_SCHEMA = {"type": "string", "pattern": f"^{request_ids.PATTERN}$"}
_REQUEST_ID_PARAMETER = {
    "name": request_ids.HEADER,
    "in": "header",
    "required": False,
    "description": "Your id for this request, echoed back; the service makes one otherwise.",
    "schema": _REQUEST_ID_SCHEMA,
}
_REQUEST_ID_RESPONSE_HEADER = {
    "description": "The request's id (yours, or one the service made): quote it for support.",
    "schema": _REQUEST_ID_SCHEMA,
}


class RequestIdPlugin(BasePlugin):  # type: ignore[misc]
    """Documents X-Request-ID (CONTRACT §2): an optional header of every request, and a header
    of every response, those in components/responses (the default error) included."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        for operation in (operations or {}).values():
            if not isinstance(operation, dict):
                continue
            parameters = operation.setdefault("parameters", [])
            if not any(
                p.get("name") == request_ids.HEADER for p in parameters if isinstance(p, dict)
            ):
                parameters.append(dict(_REQUEST_ID_PARAMETER))
            for response in operation.get("responses", {}).values():
                if isinstance(response, dict) and "$ref" not in response:
                    _with_request_id(response)

    def response_helper(self, response: dict[str, Any], **_: Any) -> dict[str, Any]:
        return _with_request_id(response)


def _with_request_id(response: dict[str, Any]) -> dict[str, Any]:
    response.setdefault("headers", {}).setdefault(
        request_ids.HEADER, dict(_REQUEST_ID_RESPONSE_HEADER)
    )
    return response


def nullable_nested(_converter: Any, field: Any, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """An apispec attribute function (bound to its converter): a nullable Nested field as
    "the schema, or null". apispec's form for OpenAPI 3.0 is `anyOf` of the schema and
    `{"type": "object", "nullable": true}`, which lets any object through, so the document
    would not say what `payment` holds; `enum: [null]` narrows that branch to null alone.
    (`nullable` beside a `$ref` or an `allOf` means nothing in OpenAPI 3.0.3.)"""
    any_of = ret.get("anyOf")
    loose = {"type": "object", "nullable": True}
    if isinstance(field, ma_fields.Nested) and field.allow_none and isinstance(any_of, list):
        ret["anyOf"] = [
            *(item for item in any_of if item != loose),
            *({**loose, "enum": [None]} for item in any_of if item == loose),
        ]
    return {}


class Api(flask_smorest.Api):  # type: ignore[misc]
    ERROR_SCHEMA = ErrorEnvelopeSchema

    def _register_error_handlers(self) -> None:
        errors.init_app(self._app)

    def handle_http_exception(self, error: Any) -> Any:
        return errors.handle_http_exception(error)


def create_api(app: Flask) -> Api:
    for key, value in API_SPEC.items():
        app.config.setdefault(key, value)
    api = Api(app, spec_kwargs={"extra_plugins": [ErrorEnvelopePlugin(), RequestIdPlugin()]})
    api.ma_plugin.converter.add_attribute_function(nullable_nested)
    return api
