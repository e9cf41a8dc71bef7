"""SandboxConfig: the sandbox PSP's settings, read from SANDBOX_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MAX_WEBHOOK_COPIES = 10
MAX_WEBHOOK_DELAY_MS = 60_000


@dataclass(frozen=True)
class SandboxConfig:
    """Defaults suit local development; ``webhook_copies`` and ``webhook_delay_ms`` are the
    starting values of the switches that ``POST /api/test/config`` overrides at run time."""

    api_key: str = "sbx_test_key"
    webhook_secret: str = "sbx_whsec_dev"  # noqa: S105 (a test-mode secret by design)
    database_url: str = "sqlite:///var/sandbox-psp.db"
    webhook_copies: int = 1
    webhook_delay_ms: int = 0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("SANDBOX_API_KEY must not be empty")
        if not self.webhook_secret:
            raise ValueError("SANDBOX_WEBHOOK_SECRET must not be empty")
        if not 1 <= self.webhook_copies <= MAX_WEBHOOK_COPIES:
            raise ValueError(f"SANDBOX_WEBHOOK_COPIES must be 1..{MAX_WEBHOOK_COPIES}")
        if not 0 <= self.webhook_delay_ms <= MAX_WEBHOOK_DELAY_MS:
            raise ValueError(f"SANDBOX_WEBHOOK_DELAY_MS must be 0..{MAX_WEBHOOK_DELAY_MS}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxConfig:
        """Read SANDBOX_* variables; an unset or blank variable keeps the default."""
        env = os.environ if environ is None else environ
        defaults = cls()

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        return cls(
            api_key=get("SANDBOX_API_KEY", defaults.api_key),
            webhook_secret=get("SANDBOX_WEBHOOK_SECRET", defaults.webhook_secret),
            database_url=get("SANDBOX_DATABASE_URL", defaults.database_url),
            webhook_copies=_int("SANDBOX_WEBHOOK_COPIES", get("SANDBOX_WEBHOOK_COPIES", "1")),
            webhook_delay_ms=_int("SANDBOX_WEBHOOK_DELAY_MS", get("SANDBOX_WEBHOOK_DELAY_MS", "0")),
        )


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None
