"""The redaction processor drops secrets and masks e-mail addresses wherever they appear."""

import io
import json

import structlog

from payment_service.logging import REDACTED, configure_logging, mask_email, redact


def test_mask_email_keeps_first_letter_and_domain():
    assert mask_email("kim@example.com") == "k***@example.com"
    assert mask_email("to: Jane.Doe+x@mail.example.org, ok") == "to: J***@mail.example.org, ok"
    assert mask_email("no address here") == "no address here"


def test_secret_keys_are_dropped_and_secret_values_masked():
    event = redact(None, "info", {
        "event": "x",
        "Authorization": "Bearer sk_abcdefghijklmnopqrstuvwxyz",
        "headers": {"authorization": "Bearer abc", "accept": "json"},
        "note": "key sk_abcdefghijklmnopqrstuvwxyz and whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "customer": {"email": "kim@example.com"},
        "list": ["Bearer sk_abcdefghijklmnopqrstuvwxyz"],
    })  # fmt: skip
    assert event["Authorization"] == REDACTED
    assert event["headers"] == {"authorization": REDACTED, "accept": "json"}
    assert "sk_abc" not in event["note"] and "whsec_" not in event["note"]
    assert event["customer"] == {"email": "k***@example.com"}
    assert event["list"] == [REDACTED]


def test_checkout_page_tokens_are_masked_in_urls():
    token = "WyJjaGtfZFQ3SHFUbUZLWFlHRW1Bci0yNjlLRGJTIiwxNzk1MzU3OTYxXQ.NfqUu2IbUpOj03U-0oPSXg2LSl0"
    event = redact(None, "error", {
        "event": f"Invalid HTTP request line: 'GET /checkout/chk_1?t={token} HTTP/1.1 x'",
        "url": f"http://127.0.0.1:8000/checkout/chk_1/return?a=1&t={token}&b=2",
        "other": "?target=kept&at=kept",
    })  # fmt: skip
    assert token not in json.dumps(event)
    assert (
        event["event"]
        == f"Invalid HTTP request line: 'GET /checkout/chk_1?t={REDACTED} HTTP/1.1 x'"
    )
    assert event["url"] == f"http://127.0.0.1:8000/checkout/chk_1/return?a=1&t={REDACTED}&b=2"
    assert event["other"] == "?target=kept&at=kept"


def test_json_lines_carry_bound_context():
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    structlog.contextvars.bind_contextvars(requestId="req_1")
    try:
        structlog.get_logger("t").info("hello", email="kim@example.com")
    finally:
        structlog.contextvars.clear_contextvars()
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["event"] == "hello"
    assert line["requestId"] == "req_1"
    assert line["email"] == "k***@example.com"
    assert line["level"] == "info"
