"""Error codes, their statuses and the envelope (CONTRACT §3)."""

import pytest
from marshmallow import ValidationError

from shared_contracts.errors import (
    HTTP_STATUS,
    ErrorCode,
    ErrorEnvelopeSchema,
    error_body,
)

# Copied by hand from CONTRACT §3 (plus `forbidden` for checkout-page tokens and
# `invalid_signature` for provider webhooks), so a change to either side shows up here.
CONTRACT_STATUSES = {
    "malformed_json": 400,
    "idempotency_key_missing": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "invalid_signature": 400,
    "not_found": 404,
    "method_not_allowed": 405,
    "idempotency_key_in_use": 409,
    "checkout_exists": 409,
    "invalid_state": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation_error": 422,
    "idempotency_key_reused": 422,
    "url_not_allowed": 422,
    "rate_limited": 429,
    "provider_unavailable": 503,
    "internal_error": 500,
}


def test_codes_are_exactly_the_contracts():
    assert {code.value for code in ErrorCode} == set(CONTRACT_STATUSES)


def test_every_code_has_a_status():
    assert set(HTTP_STATUS) == set(ErrorCode)


@pytest.mark.parametrize(("code", "status"), sorted(CONTRACT_STATUSES.items()))
def test_status_matches_contract(code, status):
    assert HTTP_STATUS[ErrorCode(code)] == status


def test_statuses_are_client_or_server_errors():
    assert all(400 <= status <= 599 for status in HTTP_STATUS.values())


def test_error_body_shape():
    body = error_body(ErrorCode.CHECKOUT_EXISTS, "exists", "req_1", {"checkoutId": "chk_1"})
    assert body == {
        "error": {
            "code": "checkout_exists",
            "message": "exists",
            "requestId": "req_1",
            "details": {"checkoutId": "chk_1"},
        }
    }


def test_error_body_defaults_details_to_empty_object():
    assert error_body("not_found", "gone", "req_2")["error"]["details"] == {}


def test_error_body_rejects_unknown_code():
    with pytest.raises(ValueError):
        error_body("teapot", "short and stout", "req_3")


def test_error_body_copies_details():
    details = {"amount": ["Must be an integer."]}
    body = error_body(ErrorCode.VALIDATION_ERROR, "invalid", "req_4", details)
    details["currency"] = ["late addition"]
    assert body["error"]["details"] == {"amount": ["Must be an integer."]}


def test_schema_round_trips_error_body():
    schema = ErrorEnvelopeSchema()
    body = error_body(ErrorCode.RATE_LIMITED, "slow down", "req_5", {"retryAfter": 3})
    loaded = schema.load(body)
    assert loaded["error"]["code"] is ErrorCode.RATE_LIMITED
    assert loaded["error"]["request_id"] == "req_5"
    assert schema.dump(loaded) == body


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"error": {"message": "m", "requestId": "r"}},
        {"error": {"code": "teapot", "message": "m", "requestId": "r"}},
        {"error": {"code": "not_found", "message": "m"}},
    ],
)
def test_schema_rejects_bad_envelopes(body):
    with pytest.raises(ValidationError):
        ErrorEnvelopeSchema().load(body)
