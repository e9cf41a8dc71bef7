"""SandboxConfig: defaults, SANDBOX_* variables, and refusal of bad values."""

from __future__ import annotations

import pytest

from payment_service.sandbox_psp.config import SandboxConfig


def test_defaults() -> None:
    config = SandboxConfig.from_env({})
    assert config == SandboxConfig(
        api_key="sbx_test_key",
        webhook_secret="sbx_whsec_dev",
        database_url="sqlite:///var/sandbox-psp.db",
        webhook_copies=1,
        webhook_delay_ms=0,
    )


def test_reads_the_environment() -> None:
    config = SandboxConfig.from_env(
        {
            "SANDBOX_API_KEY": "k",
            "SANDBOX_WEBHOOK_SECRET": "s",
            "SANDBOX_DATABASE_URL": "sqlite:////tmp/x.db",
            "SANDBOX_WEBHOOK_COPIES": "3",
            "SANDBOX_WEBHOOK_DELAY_MS": " 250 ",
        }
    )
    assert (config.api_key, config.webhook_secret, config.database_url) == (
        "k",
        "s",
        "sqlite:////tmp/x.db",
    )
    assert (config.webhook_copies, config.webhook_delay_ms) == (3, 250)


@pytest.mark.parametrize(
    "environ",
    [
        {"SANDBOX_WEBHOOK_COPIES": "two"},
        {"SANDBOX_WEBHOOK_COPIES": "0"},
        {"SANDBOX_WEBHOOK_COPIES": "11"},
        {"SANDBOX_WEBHOOK_DELAY_MS": "-1"},
    ],
)
def test_bad_values_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="SANDBOX_WEBHOOK"):
        SandboxConfig.from_env(environ)


def test_is_frozen() -> None:
    with pytest.raises(AttributeError):
        SandboxConfig().api_key = "x"  # type: ignore[misc]
