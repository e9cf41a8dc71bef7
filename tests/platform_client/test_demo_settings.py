"""The reference platform's settings: a value that could only fail later (every callback, the
first checkout) stops the start with a ConfigError that names the setting, never its value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from platform_client.demo.settings import ConfigError, DemoSettings
from shared_contracts.signing import generate_secret

API_KEY = "sk_test_0123456789abcdef"
GOOD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks test vector's


def env(**values: str) -> dict[str, str]:
    return {"PLATFORM_API_KEY": API_KEY, "PLATFORM_SIGNING_SECRETS": GOOD_SECRET, **values}


def refused(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as raised:
        DemoSettings.from_env(environ)
    return str(raised.value)


def test_good_credentials_and_urls_are_taken() -> None:
    second = generate_secret()
    settings = DemoSettings.from_env(
        env(
            PLATFORM_SIGNING_SECRETS=f"{GOOD_SECRET}, {second}",
            PLATFORM_PAYMENT_SERVICE_URL="https://pay.example/base/",
            PLATFORM_PUBLIC_URL="https://platform.example/",
        )
    )
    assert settings.api_key == API_KEY and settings.signing_secrets == (GOOD_SECRET, second)
    assert settings.payment_service_url == "https://pay.example/base"
    assert settings.public_url == "https://platform.example"


@pytest.mark.parametrize(
    "secrets",
    [
        "not-a-secret",  # no whsec_ prefix
        "whsec_not*base64!",  # not base64 after the prefix
        "whsec_c2hvcnQ=",  # base64 of 5 bytes: too short a key
        f"{GOOD_SECRET},whsec_bad-second-secret",  # one bad secret among good ones
    ],
    ids=["no-prefix", "not-base64", "too-short", "second-of-two"],
)
def test_a_malformed_signing_secret_is_a_config_error_without_its_value(secrets: str) -> None:
    message = refused(env(PLATFORM_SIGNING_SECRETS=secrets))
    assert "PLATFORM_SIGNING_SECRETS" in message and "malformed" in message
    for secret in secrets.split(","):
        assert secret not in message


def test_a_malformed_secret_in_the_merchant_file_is_a_config_error(tmp_path: Path) -> None:
    merchant = tmp_path / "merchant.json"
    merchant.write_text(json.dumps({"apiKey": API_KEY, "signingSecret": "whsec_oops"}))
    message = refused({"PLATFORM_MERCHANT_FILE": str(merchant)})
    assert "signingSecret" in message and str(merchant) in message
    assert "whsec_oops" not in message
    merchant.write_text(json.dumps({"apiKey": API_KEY, "signingSecret": GOOD_SECRET}))
    assert DemoSettings.from_env({"PLATFORM_MERCHANT_FILE": str(merchant)}).signing_secrets == (
        GOOD_SECRET,
    )


@pytest.mark.parametrize(
    "api_key",
    [f"Bearer {API_KEY}", f'"{API_KEY}"', "sk_test_ä_0123456789"],
    ids=["with-bearer", "quoted", "non-ascii"],
)
def test_an_api_key_no_bearer_header_can_carry_is_a_config_error(api_key: str) -> None:
    message = refused(env(PLATFORM_API_KEY=api_key))
    assert "PLATFORM_API_KEY" in message and api_key not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PLATFORM_PAYMENT_SERVICE_URL", "http://127.0.0.1:80000"),
        ("PLATFORM_PAYMENT_SERVICE_URL", "http://127.0.0.1:8000?debug=1"),
        ("PLATFORM_PAYMENT_SERVICE_URL", "http://127.0.0.1:8000/#top"),
        ("PLATFORM_PUBLIC_URL", "http://127.0.0.1:8001/demo"),
        ("PLATFORM_PUBLIC_URL", "http://127.0.0.1:notaport"),
    ],
    ids=["port-out-of-range", "query", "fragment", "public-url-path", "port-not-a-number"],
)
def test_a_url_that_would_only_fail_at_the_first_request_is_a_config_error(
    name: str, value: str
) -> None:
    assert name in refused(env(**{name: value}))


def test_a_url_with_a_password_is_refused_without_echoing_it() -> None:
    message = refused(env(PLATFORM_PAYMENT_SERVICE_URL="http://kim:hunter2@127.0.0.1:8000"))
    assert "PLATFORM_PAYMENT_SERVICE_URL" in message and "hunter2" not in message
