"""The OpenAPI document at /openapi.json (CONTRACT §3, §5, §9) is valid, documents the API key
and the error envelope on every /v1 operation, and schemathesis, run against the app in
process, finds no 5xx and no answer that breaks the document.

The schemathesis run is CI-sized and reproducible: a fixed number of examples per operation,
derandomized, no example database. A failure names the operation and the run, and shows the
request as a curl command.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import update

from payment_service.checkouts.models import Checkout
from payment_service.db import utcnow
from payment_service.merchants.auth import requires_api_key
from payment_service.payments.models import Payment
from tests.factories import PLATFORM_ORIGIN, checkout_payload

ERROR_ENVELOPE = "#/components/schemas/ErrorEnvelope"
CREATE = ("/v1/ticket-checkouts", "post")
CHECKOUT_OPERATIONS = {
    "POST /v1/ticket-checkouts",
    "GET /v1/ticket-checkouts",
    "GET /v1/ticket-checkouts/{checkout_id}",
    "POST /v1/ticket-checkouts/{checkout_id}/cancel",
}
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
FUZZ_EXAMPLES = 30  # per operation and generation mode
SEEDED_EXAMPLES = 10  # per operation and seeded checkout
URL_FIELDS = ("successUrl", "cancelUrl", "callbackUrl")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def spec(client) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.get_json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def content_schema(response: dict[str, Any]) -> dict[str, Any] | None:
    schema: dict[str, Any] | None = (
        response.get("content", {}).get("application/json", {}).get("schema")
    )
    return schema


def test_the_document_is_valid_openapi(spec):
    validate(spec)  # picks the validator for the document's version; raises on any problem
    assert spec["openapi"].startswith("3.")


def test_every_v1_operation_documents_its_authentication_and_the_error_envelope(spec):
    v1 = [(p, m, op) for p, m, op in operations(spec) if p.startswith("/v1/")]
    assert {f"{m.upper()} {p}" for p, m, _ in v1} >= CHECKOUT_OPERATIONS
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    for path, method, operation in v1:
        label = f"{method.upper()} {path}"
        errors = {s: r for s, r in operation["responses"].items() if s.startswith("4")}
        assert errors, label
        # The document says what the service does: an API key where it is checked, and only there
        # (provider webhooks are verified by the provider's signature instead).
        bearer = {"bearerAuth": []} in operation.get("security", spec.get("security", []))
        assert bearer is requires_api_key(path.replace("{", "").replace("}", "")), label
        assert bearer is ("401" in errors), label
        for status, response in errors.items():
            assert content_schema(response) == {"$ref": ERROR_ENVELOPE}, f"{label} {status}"
        default = operation["responses"]["default"]
        if "$ref" in default:
            default = spec["components"]["responses"][default["$ref"].rsplit("/", 1)[-1]]
        assert content_schema(default) == {"$ref": ERROR_ENVELOPE}, f"{label} default"


def test_the_error_envelope_is_the_contracts(spec):
    schemas = spec["components"]["schemas"]
    envelope = schemas["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    assert envelope["properties"]["error"] == {"$ref": "#/components/schemas/Error"}
    error = schemas["Error"]
    assert set(error["properties"]) == {"code", "message", "requestId", "details"}
    assert set(error["required"]) >= {"code", "message", "requestId"}
    assert {"validation_error", "checkout_exists", "internal_error"} <= set(
        error["properties"]["code"]["enum"]
    )


def test_a_checkout_answer_documents_every_field_as_always_there(spec):
    """Every field of an answer is sent every time (null where nullable): a client generated
    from the document gets required fields; fields added later are not forbidden."""
    schemas = spec["components"]["schemas"]
    checkout, payment = schemas["Checkout"], schemas["Payment"]
    for schema in (checkout, payment, schemas["CheckoutList"]):
        assert set(schema["required"]) == set(schema["properties"])
        assert "additionalProperties" not in schema
    nullable = {
        name for name, field in checkout["properties"].items()
        if field.get("nullable") or "anyOf" in field
    }  # fmt: skip
    assert nullable == {"paymentMethodFamily", "paidAt", "payment"}
    validator = OAS30Validator(
        {**checkout["properties"]["payment"], "components": spec["components"]},
        format_checker=oas30_format_checker,
    )
    whole = {
        "paymentId": "pay_1",
        "provider": "sandbox",
        "txId": None,
        "paidAt": "2026-11-22T10:03:12Z",
    }
    assert validator.is_valid(None) and validator.is_valid(whole)
    assert not validator.is_valid({}) and not validator.is_valid({"paymentId": "pay_1"})


def test_every_operation_documents_x_request_id_both_ways(spec):
    """CONTRACT §4: a request may carry X-Request-ID; every response carries it back."""
    for path, method, operation in operations(spec):
        label = f"{method.upper()} {path}"
        [parameter] = [p for p in operation["parameters"] if p["name"] == "X-Request-ID"]
        assert (parameter["in"], parameter["required"]) == ("header", False), label
        for status, response in operation["responses"].items():
            if "$ref" in response:
                response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
            assert "X-Request-ID" in response.get("headers", {}), f"{label} {status}"


def test_create_documents_the_idempotency_key_its_answers_and_an_example(spec):
    operation = spec["paths"][CREATE[0]][CREATE[1]]
    [key] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and key["required"] is True
    assert key["schema"] == {"type": "string", "minLength": 1, "maxLength": 255}
    assert set(operation["responses"]) >= {"201", "400", "401", "409", "415", "422"}
    assert operation["requestBody"]["content"]["application/json"]["example"]
    assert operation["responses"]["201"]["content"]["application/json"]["example"]


def test_every_documented_example_matches_its_schema(spec):
    checked = 0
    for path, method, operation in operations(spec):
        bodies = [operation.get("requestBody", {}), *operation["responses"].values()]
        for body in bodies:
            media = body.get("content", {}).get("application/json", {})
            if "example" in media:
                validator = OAS30Validator(
                    {**media["schema"], "components": spec["components"]},
                    format_checker=oas30_format_checker,
                )
                errors = [e.message for e in validator.iter_errors(media["example"])]
                assert not errors, f"{method.upper()} {path}: {errors}"
                checked += 1
    assert checked >= 2  # the create request and its 201 answer at least


def test_the_documented_create_example_creates_a_checkout(client, merchant, spec):
    media = spec["paths"][CREATE[0]][CREATE[1]]["requestBody"]["content"]["application/json"]
    response = client.post(
        CREATE[0], json=media["example"], headers={**merchant.auth, "Idempotency-Key": "doc-1"}
    )
    assert response.status_code == 201, response.get_json()


# --- schemathesis -------------------------------------------------------------------------


def with_fresh_idempotency_key(case: Case) -> None:
    """A key the document allows becomes a new one, so that a valid body creates a checkout
    instead of colliding with an earlier call under the same made-up key (422 reused); a key
    the document refuses (missing, empty, too long) is sent as generated."""
    key = case.headers.get("Idempotency-Key") if case.headers else None
    if isinstance(key, str) and 1 <= len(key) <= 255:
        case.headers["Idempotency-Key"] = f"schemathesis-{uuid.uuid4()}"


def aimed_at_the_allowlist(case: Case) -> Case:
    """Generated URLs are almost never on the merchant's allowlist, so every create would end
    in 422 url_not_allowed; put each under the allowed origin to reach the database."""
    if isinstance(case.body, dict):
        for field in URL_FIELDS:
            if isinstance(case.body.get(field), str):
                case.body[field] = f"{PLATFORM_ORIGIN}/{quote(case.body[field], safe='')}"
    return case


def negatable(operation: Any, fixed: dict[str, str]) -> bool:
    """Whether negative mode has something to break: a body, or a query or header parameter
    that is not fixed (schemathesis cannot send an invalid path parameter, so it finds none)."""
    names = {name.lower() for name in fixed}
    return bool(len(operation.body)) or any(
        parameter.location.value != "path" and parameter.name.lower() not in names
        for parameter in operation.iter_parameters()
    )


def run_cases(
    strategy: st.SearchStrategy[Case], examples: int, call: Callable[[Case], None]
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,  # requests hit a real database; timing is not what is tested
        derandomize=True,  # the same cases on every run, so a failure reproduces
        database=None,  # nothing replayed from an earlier run either
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @given(case=strategy)
    def check(case: Case) -> None:
        call(case)

    check()


def seed_checkouts(client, merchant, db) -> tuple[str, str]:
    """An open checkout and a paid one with its payment, so that reads and cancels reach real
    rows and the answers carry every field of the document (`paidAt`, `payment`)."""
    ids = []
    for reservation in ("res_schemathesis_open", "res_schemathesis_paid"):
        response = client.post(
            CREATE[0],
            json=checkout_payload(reservation),
            headers={**merchant.auth, "Idempotency-Key": f"seed-{reservation}"},
        )
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["checkoutId"])
    now = utcnow()
    with db.transaction() as session:
        session.execute(
            update(Checkout).where(Checkout.id == ids[1]).values(status="paid", paid_at=now)
        )
        session.add(
            Payment(
                id="pay_schemathesis", checkout_id=ids[1], merchant_id=merchant.merchant_id,
                provider="sandbox", provider_payment_id="sbp_1", status="succeeded",
                amount=30000, currency="KRW", tx_id=None, occurred_at=now,
            )
        )  # fmt: skip
    return ids[0], ids[1]


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(
    app, client, merchant, db, subtests
):
    open_id, paid_id = seed_checkouts(client, merchant, db)
    # A failure shows its request in full: the key is a throwaway test merchant's.
    config = schemathesis.Config.from_dict({"output": {"sanitization": {"enabled": False}}})
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)
    statuses: dict[str, set[int]] = defaultdict(set)

    def call(case: Case) -> None:
        with_fresh_idempotency_key(case)
        response = case.call_and_validate(checks=CHECKS)  # raises with a curl command on failure
        statuses[case.operation.label].add(response.status_code)

    for_each_checkout = [
        ("an open checkout", {"path_parameters": {"checkout_id": open_id}}),
        ("a paid checkout", {"path_parameters": {"checkout_id": paid_id}}),
    ]
    seeded: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "GET /v1/ticket-checkouts": [
            ("a reservation with a checkout", {"query": {"reservationId": "res_schemathesis_open"}})
        ],
        "GET /v1/ticket-checkouts/{checkout_id}": for_each_checkout,
        "POST /v1/ticket-checkouts/{checkout_id}/cancel": for_each_checkout,
        # Generated names are never a provider: reach the signature check of the real one too.
        "POST /v1/providers/{provider}/webhooks": [
            ("the sandbox provider", {"path_parameters": {"provider": "sandbox"}})
        ],
    }

    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()  # raises if schemathesis cannot read an operation
        labels.append(operation.label)
        auth = dict(merchant.auth)
        runs: list[tuple[str, st.SearchStrategy[Case], int]] = []
        runs += [
            ("documented examples", strategy, SEEDED_EXAMPLES)
            for strategy in operation.get_strategies_from_examples(headers=auth)
        ]
        runs.append(("positive", operation.as_strategy(headers=auth), FUZZ_EXAMPLES))
        if negatable(operation, fixed=auth):
            negative = operation.as_strategy(GenerationMode.NEGATIVE, headers=auth)
            runs.append(("negative", negative, FUZZ_EXAMPLES))
        if (operation.path, operation.method.lower()) == CREATE:
            aimed = operation.as_strategy(headers=auth).map(aimed_at_the_allowlist)
            runs.append(("positive, URLs on the allowlist", aimed, FUZZ_EXAMPLES))
        for name, fixed in seeded.get(operation.label, []):
            strategy = operation.as_strategy(headers=auth, **fixed)
            runs.append((f"positive, {name}", strategy, SEEDED_EXAMPLES))
        for name, strategy, examples in runs:
            with subtests.test(msg=f"{operation.label}: {name}"):
                run_cases(strategy, examples, call)

    assert set(labels) >= CHECKOUT_OPERATIONS
    # The run reached the interesting answers, not only validation errors.
    assert {201, 422} <= statuses["POST /v1/ticket-checkouts"], statuses
    assert {200, 422} <= statuses["GET /v1/ticket-checkouts"], statuses
    assert {200, 404} <= statuses["GET /v1/ticket-checkouts/{checkout_id}"], statuses
    assert {200, 404, 409} <= statuses["POST /v1/ticket-checkouts/{checkout_id}/cancel"], statuses


# --- what the schemathesis run found ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "fields", "status", "field"),
    [
        ("get", "/v1/ticket-checkouts?reservationId=r%00", None, 422, "reservationId"),
        ("get", "/v1/ticket-checkouts/chk_%00", None, 404, None),
        ("post", "/v1/ticket-checkouts/chk_%00/cancel", None, 404, None),
        ("post", "/v1/ticket-checkouts", {"orderName": "a\x00b"}, 422, "orderName"),
        ("post", "/v1/ticket-checkouts", {"customer": {"name": "\x00"}}, 422, "customer"),
        # JSON can spell an unpaired surrogate ("\ud800"); it is not UTF-8, so no database takes it
        ("post", "/v1/ticket-checkouts", {"reservationId": "r\ud800"}, 422, "reservationId"),
        ("post", "/v1/ticket-checkouts", {"metadata": {"k": "\udfff"}}, 422, "metadata"),
    ],
)
def test_text_no_database_can_store_is_refused_never_a_500(
    client, merchant, method, url, fields, status, field
):
    """U+0000 (found by the run above) failed every PostgreSQL query with a 500; an unpaired
    surrogate (found while fixing that) failed on every database with a 500."""
    headers = {**merchant.auth, "Idempotency-Key": "text-1"}
    kwargs = {}
    if fields is not None:  # json.dumps escapes both, as a client's JSON encoder would
        kwargs = {
            "data": json.dumps(checkout_payload(**fields)),
            "content_type": "application/json",
        }
    response = getattr(client, method)(url, headers=headers, **kwargs)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == ("validation_error" if status == 422 else "not_found")
    if field:
        assert list(error["details"]) == [field]
