"""Settings: one frozen object read from the environment and validated once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# The Standard Webhooks retry schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
# 20 h, 24 h (about three days in all).
STANDARD_RETRY_SCHEDULE: tuple[int, ...] = (
    0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400,
)  # fmt: skip
# Markers of the placeholder secrets in deploy/.env.example and deploy/k8s/secret.example.yaml.
EXAMPLE_PLACEHOLDERS = ("replace-me", "change0me")
INSECURE_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"  # noqa: S105 (refused in production)
MAX_BODY_BYTES = 1024 * 1024


class ConfigError(Exception):
    """A setting is missing or wrong; the process must not start."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = "sqlite:///var/payment-service.db"
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str = INSECURE_DEV_SECRET_KEY
    sandbox: bool = True
    allow_private_callbacks: bool = True
    callback_retry_schedule: tuple[int, ...] = STANDARD_RETRY_SCHEDULE
    max_payment_attempts: int = 3
    # How long a worker owns a claimed callback delivery; after it, another worker may retry
    # it (a worker that died mid-attempt). Longer than one attempt's 15 s timeout by default.
    callback_lease_seconds: int = 60
    log_format: str = "json"
    log_level: str = "INFO"
    # The sandbox PSP: where the adapter reaches it (default: mounted at {public_url}/sandbox),
    # the credentials both sides share, and its own database.
    sandbox_url: str | None = None
    sandbox_api_key: str = "sbx_test_key"
    sandbox_webhook_secret: str = "sbx_whsec_dev"  # noqa: S105 (test-mode secret)
    sandbox_database_url: str = "sqlite:///var/sandbox-psp.db"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read PAYMENT_* variables; raise ConfigError with one readable sentence if any is bad."""
        env_vars = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env_vars.get(name)
            return value.strip() if value is not None and value.strip() != "" else None

        env = get("PAYMENT_ENV") or "development"
        if env not in ("development", "production"):
            raise ConfigError(f"PAYMENT_ENV must be 'development' or 'production', not {env!r}")
        production = env == "production"

        secret_key = get("PAYMENT_SECRET_KEY")
        if secret_key is None:
            if production:
                raise ConfigError("PAYMENT_SECRET_KEY is required when PAYMENT_ENV=production")
            secret_key = INSECURE_DEV_SECRET_KEY
        elif production and (secret_key == INSECURE_DEV_SECRET_KEY or len(secret_key) < 32):
            raise ConfigError("PAYMENT_SECRET_KEY must be at least 32 characters in production")
        elif production and is_example_placeholder(secret_key):
            raise ConfigError(
                "PAYMENT_SECRET_KEY is the example's placeholder: anyone who has read the example"
                " could sign checkout links; use a random value (e.g. openssl rand -hex 32)"
            )

        sandbox_raw = get("PAYMENT_SANDBOX")
        sandbox = _flag("PAYMENT_SANDBOX", sandbox_raw, default=not production)
        allow_private = _flag(
            "PAYMENT_ALLOW_PRIVATE_CALLBACKS",
            get("PAYMENT_ALLOW_PRIVATE_CALLBACKS"),
            default=not production,
        )
        if production and allow_private:
            raise ConfigError("PAYMENT_ALLOW_PRIVATE_CALLBACKS=1 is refused in production")

        log_format = get("PAYMENT_LOG_FORMAT") or "json"
        if log_format not in ("json", "console"):
            raise ConfigError(f"PAYMENT_LOG_FORMAT must be 'json' or 'console', not {log_format!r}")
        log_level = (get("PAYMENT_LOG_LEVEL") or "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(
                f"PAYMENT_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {log_level!r}"
            )

        return cls(
            env=env,
            database_url=normalize_database_url(
                get("PAYMENT_DATABASE_URL") or "sqlite:///var/payment-service.db"
            ),
            public_url=_public_url(
                "PAYMENT_PUBLIC_URL",
                get("PAYMENT_PUBLIC_URL") or "http://127.0.0.1:8000",
                production,
            ),
            secret_key=secret_key,
            sandbox=sandbox,
            allow_private_callbacks=allow_private,
            callback_retry_schedule=_schedule(get("PAYMENT_CALLBACK_RETRY_SCHEDULE")),
            max_payment_attempts=_positive_int(
                "PAYMENT_MAX_PAYMENT_ATTEMPTS", get("PAYMENT_MAX_PAYMENT_ATTEMPTS"), 3
            ),
            callback_lease_seconds=_positive_int(
                "PAYMENT_CALLBACK_LEASE_SECONDS", get("PAYMENT_CALLBACK_LEASE_SECONDS"), 60
            ),
            log_format=log_format,
            log_level=log_level,
            sandbox_url=_public_url("PAYMENT_SANDBOX_URL", get("PAYMENT_SANDBOX_URL"), False)
            if get("PAYMENT_SANDBOX_URL")
            else None,
            sandbox_api_key=get("SANDBOX_API_KEY") or "sbx_test_key",
            sandbox_webhook_secret=get("SANDBOX_WEBHOOK_SECRET") or "sbx_whsec_dev",
            sandbox_database_url=normalize_database_url(
                get("SANDBOX_DATABASE_URL") or "sqlite:///var/sandbox-psp.db",
                name="SANDBOX_DATABASE_URL",
                make_dir=sandbox,  # without the sandbox nothing opens it: no var/ anywhere
            ),
        )


def _flag(name: str, raw: str | None, *, default: bool) -> bool:
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, not {raw!r}")


def _positive_int(name: str, raw: str | None, default: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, not {value}")
    return value


def _schedule(raw: str | None) -> tuple[int, ...]:
    if raw is None:
        return STANDARD_RETRY_SCHEDULE
    try:
        schedule = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(
            f"PAYMENT_CALLBACK_RETRY_SCHEDULE must be comma-separated seconds, not {raw!r}"
        ) from None
    if any(delay < 0 for delay in schedule):
        raise ConfigError("PAYMENT_CALLBACK_RETRY_SCHEDULE must not contain negative delays")
    return schedule


def is_example_placeholder(value: str) -> bool:
    """True for a secret copied unchanged from deploy/'s examples (.env.example,
    k8s/secret.example.yaml), whose placeholders contain one of EXAMPLE_PLACEHOLDERS."""
    return any(marker in value.lower() for marker in EXAMPLE_PLACEHOLDERS)


def _public_url(name: str, raw: str, production: bool) -> str:
    """An absolute http(s) URL with no credentials, query or fragment, without a trailing /.
    Messages show the value only when it has no user information, which may be a password."""
    from urllib.parse import urlsplit

    shown = "" if "@" in raw else f", not {raw!r}"
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (parsing the port is the check: "99999" or "x" raise here)
    except ValueError:
        raise ConfigError(f"{name} must be an absolute http(s) URL{shown}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an absolute http(s) URL{shown}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{name} must not contain a user name or password")
    if production and parts.scheme != "https":
        raise ConfigError(f"{name} must be https in production")
    return raw.rstrip("/")


def normalize_database_url(
    raw: str, *, name: str = "PAYMENT_DATABASE_URL", make_dir: bool = True
) -> str:
    """Validate a database URL (the variable ``name``) and pin the driver: psycopg 3 for
    PostgreSQL, pysqlite for SQLite, whose file's directory is created (``make_dir``). Messages
    never repeat the URL: it may hold a password."""
    try:
        url: URL = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(f"{name} is not a database URL") from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise ConfigError(f"{name} must name a SQLite file, not an in-memory database")
        try:
            if make_dir:
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"{name}: cannot create the SQLite file's directory: {exc.strerror}"
            ) from None
    else:
        raise ConfigError(f"{name} must be a postgresql:// or sqlite:// URL, not {backend!r}")
    return url.render_as_string(hide_password=False)
