"""DemoSettings: the reference platform's configuration, read from PLATFORM_* variables once."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from shared_contracts import signing

INSECURE_DEV_SECRET_KEY = "dev-only-platform-secret-key-do-not-use-in-production"  # noqa: S105 (refused in production)
DEFAULT_TTL_SECONDS = 600
# A checkout must stay open at least 60 s after it is created (CONTRACT §5) and the ledger asks
# for one that ends with the hold, so a shorter hold could never get a checkout.
MIN_TTL_SECONDS = 90
MAX_TTL_SECONDS = 24 * 3600
# RFC 6750's b64token: what an ``Authorization: Bearer`` header can carry.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


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
        database_url = normalize_database_url(
            get("PLATFORM_DATABASE_URL") or "sqlite:///var/platform.db"
        )
        payment_service_url = _http_url(
            "PLATFORM_PAYMENT_SERVICE_URL",
            get("PLATFORM_PAYMENT_SERVICE_URL") or "http://127.0.0.1:8000",
        )
        public_url = _http_url(
            "PLATFORM_PUBLIC_URL",
            get("PLATFORM_PUBLIC_URL") or "http://127.0.0.1:8001",
            origin_only=True,
        )
        secret_key = _secret_key(get("PLATFORM_SECRET_KEY"), production)
        ttl = _ttl(get("PLATFORM_RESERVATION_TTL_SECONDS"))
        api_key, secrets = _credentials(get)
        return cls(
            database_url=database_url,
            payment_service_url=payment_service_url,
            api_key=api_key,
            signing_secrets=secrets,
            public_url=public_url,
            secret_key=secret_key,
            reservation_ttl=timedelta(seconds=ttl),
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
        return (
            _api_key("PLATFORM_API_KEY", api_key),
            _signing_secrets("PLATFORM_SIGNING_SECRETS", secrets),
        )
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
    return (
        _api_key(f"apiKey in merchant file {path}", key),
        _signing_secrets(f"signingSecret in merchant file {path}", (secret,)),
    )


def _api_key(source: str, value: str) -> str:
    """The key as a Bearer token can carry it (RFC 6750); anything else, such as a pasted
    "Bearer sk_…", would only show as a 401 or a crash at the first checkout. Never echoed."""
    if not _BEARER_TOKEN.fullmatch(value):
        raise ConfigError(
            f"{source} must be the API key alone, as `payment-service merchants create` prints "
            "it (letters, digits and -._~+/ only: no 'Bearer ', spaces or quotes)"
        )
    return value


def _signing_secrets(source: str, secrets: tuple[str, ...]) -> tuple[str, ...]:
    """Each secret parsed by the very code that verifies callbacks and return URLs, so a
    malformed one stops the start instead of failing every callback with a 500 that the
    payment service retries for days. The reason is given, never the value."""
    for position, secret in enumerate(secrets, start=1):
        try:
            signing.check_secret(secret)
        except ValueError as exc:
            which = f"secret {position} of {len(secrets)}" if len(secrets) > 1 else "the secret"
            raise ConfigError(
                f"{source}: {which} is malformed ({exc}); a secret is whsec_ followed by "
                "base64, as `payment-service merchants create` prints it"
            ) from None
    return secrets


def _http_url(name: str, value: str, *, origin_only: bool = False) -> str:
    """An absolute http(s) URL that the client and the pages can append paths to; with
    ``origin_only`` no path either (the app serves callbacks and pages from its root, and
    the cross-origin check compares a browser's Origin with it)."""
    if "@" in value:  # checked first, and the value not echoed: it may hold a password
        raise ConfigError(f"{name} must not contain user information (user:password@)")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an absolute http(s) URL, not {value!r}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {value!r}") from None
    if "?" in value or "#" in value:  # paths are appended to it
        raise ConfigError(f"{name} must not have a query or fragment, not {value!r}")
    if origin_only and parts.path not in ("", "/"):
        raise ConfigError(
            f"{name} must be an origin like http://127.0.0.1:8001 (the app serves from its "
            f"root), not {value!r}"
        )
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
