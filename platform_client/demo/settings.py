"""DemoSettings: the reference platform's configuration, read from PLATFORM_* variables once."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

INSECURE_DEV_SECRET_KEY = "dev-only-platform-secret-key-do-not-use-in-production"  # noqa: S105 (refused in production)
DEFAULT_TTL_SECONDS = 600
# A checkout must stay open at least 60 s after it is created (CONTRACT §5) and the ledger asks
# for one that ends with the hold, so a shorter hold could never get a checkout.
MIN_TTL_SECONDS = 90
MAX_TTL_SECONDS = 24 * 3600


class ConfigError(Exception):
    """A setting is missing or wrong; the process must not start."""


@dataclass(frozen=True)
class DemoSettings:
    database_url: str = "sqlite:///var/platform.db"
    payment_service_url: str = "http://127.0.0.1:8000"
    api_key: str = field(default="", repr=False)
    signing_secrets: tuple[str, ...] = field(default=(), repr=False)
    public_url: str = "http://127.0.0.1:8001"
    secret_key: str = field(default=INSECURE_DEV_SECRET_KEY, repr=False)
    reservation_ttl: timedelta = timedelta(seconds=DEFAULT_TTL_SECONDS)
    production: bool = False

    @property
    def callback_url(self) -> str:
        return f"{self.public_url}/hooks/ticket-payments"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DemoSettings:
        """Read PLATFORM_* variables; raise ConfigError with one readable sentence if any is bad."""
        env_vars = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env_vars.get(name)
            return value.strip() if value is not None and value.strip() else None

        env = get("PLATFORM_ENV") or "development"
        if env not in ("development", "production"):
            raise ConfigError(f"PLATFORM_ENV must be 'development' or 'production', not {env!r}")
        production = env == "production"
        api_key, secrets = _credentials(get)
        return cls(
            database_url=normalize_database_url(
                get("PLATFORM_DATABASE_URL") or "sqlite:///var/platform.db"
            ),
            payment_service_url=_http_url(
                "PLATFORM_PAYMENT_SERVICE_URL",
                get("PLATFORM_PAYMENT_SERVICE_URL") or "http://127.0.0.1:8000",
            ),
            api_key=api_key,
            signing_secrets=secrets,
            public_url=_http_url(
                "PLATFORM_PUBLIC_URL", get("PLATFORM_PUBLIC_URL") or "http://127.0.0.1:8001"
            ),
            secret_key=_secret_key(get("PLATFORM_SECRET_KEY"), production),
            reservation_ttl=timedelta(seconds=_ttl(get("PLATFORM_RESERVATION_TTL_SECONDS"))),
            production=production,
        )


def normalize_database_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver this project installs)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not url.startswith(("sqlite:///", "postgresql+psycopg://")):
        raise ConfigError(
            "PLATFORM_DATABASE_URL must be sqlite:///path or postgresql://…, "
            f"not {url.split(':', 1)[0]!r}"
        )
    return url


def _credentials(get: Callable[[str], str | None]) -> tuple[str, tuple[str, ...]]:
    """PLATFORM_API_KEY with PLATFORM_SIGNING_SECRETS, else the file `payment-service merchants
    ensure-dev` writes (PLATFORM_MERCHANT_FILE, default var/dev-merchant.json)."""
    api_key = get("PLATFORM_API_KEY")
    raw_secrets = get("PLATFORM_SIGNING_SECRETS")
    if api_key or raw_secrets:
        secrets = tuple(s.strip() for s in (raw_secrets or "").split(",") if s.strip())
        if not api_key:
            raise ConfigError("PLATFORM_SIGNING_SECRETS is set but PLATFORM_API_KEY is not")
        if not secrets:
            raise ConfigError("PLATFORM_API_KEY is set but PLATFORM_SIGNING_SECRETS is not")
        return api_key, secrets
    path = Path(get("PLATFORM_MERCHANT_FILE") or "var/dev-merchant.json")
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no merchant credentials: {path} does not exist; run `payment-service merchants "
            "ensure-dev` or set PLATFORM_API_KEY and PLATFORM_SIGNING_SECRETS"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read merchant file {path}: {type(exc).__name__}") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"merchant file {path} is not a JSON object")
    key, secret = saved.get("apiKey"), saved.get("signingSecret")
    if not (isinstance(key, str) and key and isinstance(secret, str) and secret):
        raise ConfigError(f"merchant file {path} lacks apiKey or signingSecret")
    return key, (secret,)


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an absolute http(s) URL, not {value!r}")
    return value.rstrip("/")


def _secret_key(value: str | None, production: bool) -> str:
    if value is None:
        if production:
            raise ConfigError("PLATFORM_SECRET_KEY is required when PLATFORM_ENV=production")
        return INSECURE_DEV_SECRET_KEY
    if production and (value == INSECURE_DEV_SECRET_KEY or len(value) < 32):
        raise ConfigError("PLATFORM_SECRET_KEY must be at least 32 characters in production")
    return value


def _ttl(value: str | None) -> int:
    if value is None:
        return DEFAULT_TTL_SECONDS
    try:
        seconds = int(value)
    except ValueError:
        raise ConfigError(
            f"PLATFORM_RESERVATION_TTL_SECONDS must be a whole number, not {value!r}"
        ) from None
    if not MIN_TTL_SECONDS <= seconds <= MAX_TTL_SECONDS:
        raise ConfigError(
            f"PLATFORM_RESERVATION_TTL_SECONDS must be between {MIN_TTL_SECONDS} and "
            f"{MAX_TTL_SECONDS} (a checkout stays open at least 60 s), not {seconds}"
        )
    return seconds
