"""Standard Webhooks signing (CONTRACT §8) and redirect signatures (CONTRACT §7)."""

import base64
import hashlib
import time
from datetime import UTC, datetime

import pytest
from itsdangerous import Signer
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as TheirVerificationError

from shared_contracts.signing import (
    SECRET_PREFIX,
    InvalidSignature,
    InvalidTimestamp,
    MissingHeaders,
    StaleTimestamp,
    WebhookVerificationError,
    generate_secret,
    sign,
    sign_redirect,
    signature_header,
    verify,
    verify_redirect,
    webhook_headers,
)

# The test vector published with the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = '{"type":"ticket_payment.paid","data":{"name":"콘서트"}}'.encode()
NOW = 1_800_000_000


@pytest.fixture
def secret():
    return generate_secret()


def headers_for(secrets, body=BODY, msg_id="evt_abc", timestamp=NOW):
    return webhook_headers(secrets, msg_id, body, timestamp=timestamp)


def test_spec_test_vector():
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_spec_test_vector_verifies():
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_generated_secret_format():
    secret = generate_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)) == 32
    assert generate_secret() != secret


def test_ours_signs_theirs_verifies(secret):
    headers = webhook_headers([secret], "evt_x", BODY)  # now: their library reads the clock
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "ticket_payment.paid",
        "data": {"name": "콘서트"},
    }


def test_theirs_rejects_ours_under_another_secret(secret):
    headers = webhook_headers([secret], "evt_x", BODY)
    with pytest.raises(TheirVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_theirs_signs_ours_verifies(secret):
    timestamp = int(time.time())
    their_sig = Webhook(secret).sign(
        "evt_y", datetime.fromtimestamp(timestamp, tz=UTC), BODY.decode()
    )
    headers = {
        "Webhook-Id": "evt_y",
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": their_sig,
    }
    verify(secret, headers, BODY)
    with pytest.raises(InvalidSignature):
        verify(generate_secret(), headers, BODY)


def test_headers_carry_everything():
    headers = webhook_headers([SPEC_SECRET], SPEC_ID, SPEC_BODY, SPEC_TIMESTAMP, "req_1")
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
        "content-type": "application/json",
        "x-request-id": "req_1",
    }


def test_headers_omit_request_id_when_absent(secret):
    assert "x-request-id" not in headers_for([secret])


def test_rotation_signs_with_each_secret_and_either_verifies():
    old, new = generate_secret(), generate_secret()
    header = signature_header([old, new], "evt_r", NOW, BODY)
    assert header.split(" ") == [sign(old, "evt_r", NOW, BODY), sign(new, "evt_r", NOW, BODY)]
    headers = headers_for([old, new], msg_id="evt_r")
    verify(old, headers, BODY, now=NOW)
    verify(new, headers, BODY, now=NOW)
    verify([generate_secret(), new], headers, BODY, now=NOW)
    with pytest.raises(InvalidSignature):
        verify(generate_secret(), headers, BODY, now=NOW)


def test_receiver_holding_two_secrets_accepts_old_signature():
    old, new = generate_secret(), generate_secret()
    verify([new, old], headers_for([old]), BODY, now=NOW)


def test_header_lookup_is_case_insensitive(secret):
    headers = {name.upper(): value for name, value in headers_for([secret]).items()}
    verify(secret, headers, BODY, now=NOW)


def test_tampered_body(secret):
    with pytest.raises(InvalidSignature):
        verify(secret, headers_for([secret]), BODY + b" ", now=NOW)


def test_tampered_id(secret):
    headers = {**headers_for([secret]), "webhook-id": "evt_other"}
    with pytest.raises(InvalidSignature):
        verify(secret, headers, BODY, now=NOW)


def test_tampered_timestamp(secret):
    headers = {**headers_for([secret]), "webhook-timestamp": str(NOW + 1)}
    with pytest.raises(InvalidSignature):
        verify(secret, headers, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 86_400])
def test_stale_and_future_timestamps(secret, offset):
    headers = headers_for([secret], timestamp=NOW + offset)
    with pytest.raises(StaleTimestamp):
        verify(secret, headers, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamps_within_tolerance(secret, offset):
    verify(secret, headers_for([secret], timestamp=NOW + offset), BODY, now=NOW)


def test_custom_tolerance(secret):
    headers = headers_for([secret], timestamp=NOW - 10)
    verify(secret, headers, BODY, now=NOW, tolerance=10)
    with pytest.raises(StaleTimestamp):
        verify(secret, headers, BODY, now=NOW, tolerance=9)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers(secret, missing):
    headers = headers_for([secret])
    del headers[missing]
    with pytest.raises(MissingHeaders):
        verify(secret, headers, BODY, now=NOW)


@pytest.mark.parametrize("blank", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_empty_headers_count_as_missing(secret, blank):
    headers = {**headers_for([secret]), blank: ""}
    with pytest.raises(MissingHeaders):
        verify(secret, headers, BODY, now=NOW)


@pytest.mark.parametrize("timestamp", ["soon", "1.8e9", "1800000000.5", "-1800000000", "0x1"])
def test_non_integer_timestamp(secret, timestamp):
    headers = {**headers_for([secret]), "webhook-timestamp": timestamp}
    with pytest.raises(InvalidTimestamp):
        verify(secret, headers, BODY, now=NOW)


@pytest.mark.parametrize(
    "signature",
    [
        "garbage",
        "v1,",
        ",,,",
        "v1,not base64!!",
        "v1,ëñçødé",
        "v2,whatever v1",
        "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ],
)
def test_garbage_signature_header(secret, signature):
    headers = {**headers_for([secret]), "webhook-signature": signature}
    with pytest.raises(InvalidSignature):
        verify(secret, headers, BODY, now=NOW)


def test_a_webhook_id_with_a_lone_surrogate_is_an_invalid_signature_not_a_crash(secret):
    # What a framework that decodes header bytes with surrogateescape makes of b"evt_\xff".
    headers = {**headers_for([secret]), "webhook-id": "evt_\udcff"}
    with pytest.raises(InvalidSignature):
        verify(secret, headers, BODY, now=NOW)


def test_any_of_several_signatures_passes_and_other_versions_are_ignored(secret):
    good = sign(secret, "evt_abc", NOW, BODY)
    headers = {**headers_for([secret]), "webhook-signature": f"v1a,xyz v1,AAAA {good}"}
    verify(secret, headers, BODY, now=NOW)


def test_correct_digest_under_wrong_version_is_rejected(secret):
    digest = sign(secret, "evt_abc", NOW, BODY).removeprefix("v1,")
    headers = {**headers_for([secret]), "webhook-signature": f"v2,{digest}"}
    with pytest.raises(InvalidSignature):
        verify(secret, headers, BODY, now=NOW)


def test_verification_errors_share_a_base():
    for exc in (MissingHeaders, InvalidSignature, StaleTimestamp, InvalidTimestamp):
        assert issubclass(exc, WebhookVerificationError)
    assert not issubclass(WebhookVerificationError, ValueError)


@pytest.mark.parametrize(
    "bad_secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_",  # empty key
        "whsec_not*base64*at*all",
        "whsec_" + base64.b64encode(b"short").decode(),  # fewer than 24 bytes
    ],
)
def test_malformed_secret_raises_value_error(bad_secret):
    with pytest.raises(ValueError):
        sign(bad_secret, "evt_1", NOW, BODY)
    with pytest.raises(ValueError):
        sign_redirect(bad_secret, "chk_1", "paid")


def test_verify_with_no_secrets_is_a_configuration_error(secret):
    with pytest.raises(ValueError):
        verify([], headers_for([secret]), BODY, now=NOW)


# --- redirects (CONTRACT §7) -----------------------------------------------------------


def test_redirect_round_trip(secret):
    sig = sign_redirect(secret, "chk_1", "paid")
    assert verify_redirect(secret, "chk_1", "paid", sig) is True
    assert verify_redirect([generate_secret(), secret], "chk_1", "paid", sig) is True


def test_redirect_sig_is_url_safe(secret):
    sig = sign_redirect(secret, "chk_1", "paid")
    assert set(sig) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_redirect_sig_wire_format(secret):
    # What a platform without shared_contracts must reproduce: itsdangerous, this salt, SHA-256,
    # keyed with the decoded secret, over "checkoutId.status".
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signer = Signer(key, salt="ticket-payment.redirect", digest_method=hashlib.sha256)
    expected = signer.get_signature("chk_1.paid").decode()
    assert sign_redirect(secret, "chk_1", "paid") == expected
    unsalted = Signer(key, digest_method=hashlib.sha256).get_signature("chk_1.paid").decode()
    assert expected != unsalted


@pytest.mark.parametrize(
    ("checkout_id", "status"),
    [
        ("chk_2", "paid"),
        ("chk_1", "canceled"),
        ("chk_1.paid", ""),
        ("chk_", "1.paid"),
        ("chk_1", "paid "),
    ],
)
def test_redirect_tampered_values(secret, checkout_id, status):
    sig = sign_redirect(secret, "chk_1", "paid")
    assert verify_redirect(secret, checkout_id, status, sig) is False


def test_redirect_message_cannot_be_split_another_way(secret):
    # "chk.1" + "paid" and "chk" + "1.paid" would both be "chk.1.paid" if dots were allowed.
    sig = sign_redirect(secret, "chk.1", "paid")
    assert verify_redirect(secret, "chk.1", "paid", sig) is True
    assert verify_redirect(secret, "chk", "1.paid", sig) is False
    with pytest.raises(ValueError):
        sign_redirect(secret, "chk", "1.paid")


@pytest.mark.parametrize("sig", ["", "x", "!!!", "ëñçødé", "a" * 500])
def test_redirect_garbage_sig(secret, sig):
    assert verify_redirect(secret, "chk_1", "paid", sig) is False


def test_redirect_tampered_sig(secret):
    sig = sign_redirect(secret, "chk_1", "paid")
    # A middle character: the last one of base64 has unused low bits, so changing only those
    # (an "A" made "B") decodes to the same signature and still verifies.
    middle = len(sig) // 2
    flipped = sig[:middle] + ("A" if sig[middle] != "A" else "B") + sig[middle + 1 :]
    assert verify_redirect(secret, "chk_1", "paid", flipped) is False


def test_redirect_other_secret(secret):
    sig = sign_redirect(secret, "chk_1", "paid")
    assert verify_redirect(generate_secret(), "chk_1", "paid", sig) is False


def test_redirect_non_string_sig(secret):
    assert verify_redirect(secret, "chk_1", "paid", None) is False  # type: ignore[arg-type]
