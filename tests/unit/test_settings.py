"""Settings are read from PAYMENT_* variables and refuse bad or insecure values."""

import pytest

from payment_service.settings import (
    INSECURE_DEV_SECRET_KEY,
    STANDARD_RETRY_SCHEDULE,
    ConfigError,
    Settings,
    is_example_placeholder,
)


def test_development_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.sandbox is True
    assert settings.allow_private_callbacks is True
    assert settings.database_url == "sqlite:///var/payment-service.db"
    assert (tmp_path / "var").is_dir()
    assert settings.callback_retry_schedule == STANDARD_RETRY_SCHEDULE
    assert settings.max_payment_attempts == 3
    assert settings.log_format == "json"


def test_postgres_urls_are_pinned_to_psycopg3():
    settings = Settings.from_env({"PAYMENT_DATABASE_URL": "postgresql://u:p%40ss@db:5432/pay"})
    assert settings.database_url == "postgresql+psycopg://u:p%40ss@db:5432/pay"


def test_production_needs_its_own_secret_key():
    with pytest.raises(ConfigError, match="PAYMENT_SECRET_KEY is required"):
        Settings.from_env({"PAYMENT_ENV": "production"})
    with pytest.raises(ConfigError, match="at least 32"):
        Settings.from_env(
            {"PAYMENT_ENV": "production", "PAYMENT_SECRET_KEY": INSECURE_DEV_SECRET_KEY[:10]}
        )


def test_production_defaults_are_safe():
    settings = Settings.from_env(
        {"PAYMENT_ENV": "production", "PAYMENT_SECRET_KEY": "k" * 40,
         "PAYMENT_PUBLIC_URL": "https://pay.example", "PAYMENT_DATABASE_URL": "postgresql://db/pay"}
    )  # fmt: skip
    assert settings.sandbox is False
    assert settings.allow_private_callbacks is False


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PAYMENT_DATABASE_URL": "not a url"}, "not a database URL"),
        ({"PAYMENT_DATABASE_URL": "mysql://x/y"}, "postgresql:// or sqlite://"),
        ({"PAYMENT_DATABASE_URL": "sqlite://"}, "SQLite file"),
        ({"PAYMENT_ENV": "staging"}, "PAYMENT_ENV"),
        ({"PAYMENT_SANDBOX": "maybe"}, "PAYMENT_SANDBOX"),
        ({"PAYMENT_CALLBACK_RETRY_SCHEDULE": "0,5,x"}, "comma-separated"),
        ({"PAYMENT_CALLBACK_RETRY_SCHEDULE": "0,-1"}, "negative"),
        ({"PAYMENT_MAX_PAYMENT_ATTEMPTS": "0"}, "at least 1"),
        ({"PAYMENT_LOG_FORMAT": "xml"}, "PAYMENT_LOG_FORMAT"),
        ({"PAYMENT_PUBLIC_URL": "pay.example"}, "PAYMENT_PUBLIC_URL must be an absolute"),
        ({"PAYMENT_SANDBOX_URL": "ftp://x"}, "PAYMENT_SANDBOX_URL must be an absolute"),
        ({"PAYMENT_PUBLIC_URL": "http://[::1"}, "PAYMENT_PUBLIC_URL must be an absolute"),
        ({"PAYMENT_PUBLIC_URL": "http://127.0.0.1:99999"}, "PAYMENT_PUBLIC_URL must be an"),
        ({"PAYMENT_PUBLIC_URL": "http://127.0.0.1:x"}, "PAYMENT_PUBLIC_URL must be an"),
        ({"PAYMENT_SANDBOX_URL": "https://u:pw@sbx.example"}, "must not contain a user name"),
        ({"PAYMENT_DATABASE_URL": "postgresql://u:pw@h:54x/db"}, "is not a database URL"),
        ({"SANDBOX_DATABASE_URL": "postgresql://u:pw@h:54x/db"}, "SANDBOX_DATABASE_URL is not"),
        ({"PAYMENT_DATABASE_URL": "sqlite:////proc/nope/x.db"}, "cannot create the SQLite"),
        ({"SANDBOX_DATABASE_URL": "mysql://x/y"}, "SANDBOX_DATABASE_URL must be a postgresql://"),
        ({"SANDBOX_DATABASE_URL": "sqlite://"}, "SANDBOX_DATABASE_URL must name a SQLite file"),
        (
            {
                "PAYMENT_ENV": "production",
                "PAYMENT_SECRET_KEY": "k" * 40,
                "PAYMENT_ALLOW_PRIVATE_CALLBACKS": "1",
            },
            "refused in production",
        ),
        (
            {
                "PAYMENT_ENV": "production",
                "PAYMENT_SECRET_KEY": "k" * 40,
                "PAYMENT_PUBLIC_URL": "http://pay.example",
            },
            "https in production",
        ),
    ],
)
def test_bad_values_are_refused_with_a_readable_reason(environ, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)


def test_retry_schedule_for_tests():
    assert Settings.from_env(
        {"PAYMENT_CALLBACK_RETRY_SCHEDULE": "0,1,2"}
    ).callback_retry_schedule == (0, 1, 2)


def test_sandbox_in_production_only_when_asked():
    settings = Settings.from_env(
        {"PAYMENT_ENV": "production", "PAYMENT_SECRET_KEY": "k" * 40,
         "PAYMENT_PUBLIC_URL": "https://pay.example", "PAYMENT_SANDBOX": "1"}
    )  # fmt: skip
    assert settings.sandbox is True


@pytest.mark.parametrize(
    "placeholder",
    [
        "REPLACE-ME-with-at-least-32-random-characters",  # deploy/k8s/secret.example.yaml
        "change0me0payment0secret0key0at0least032characters",  # deploy/.env.example
    ],
)
def test_production_refuses_the_examples_placeholder_secret_key(placeholder):
    with pytest.raises(ConfigError, match="placeholder") as refused:
        Settings.from_env(
            {"PAYMENT_ENV": "production", "PAYMENT_SECRET_KEY": placeholder,
             "PAYMENT_PUBLIC_URL": "https://pay.example", "PAYMENT_DATABASE_URL": "postgresql://db/pay"}
        )  # fmt: skip
    assert placeholder not in str(refused.value)


def test_the_examples_placeholders_are_the_ones_refused(repo_root):
    """If deploy/'s examples change their placeholders, the check must change with them."""
    for name in ("deploy/.env.example", "deploy/k8s/secret.example.yaml"):
        text = (repo_root / name).read_text()
        key = next(line for line in text.splitlines() if "PAYMENT_SECRET_KEY" in line)
        assert is_example_placeholder(key.split("=", 1)[-1].split(":", 1)[-1].strip()), name


def test_messages_never_show_a_url_with_user_information():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"PAYMENT_SANDBOX_URL": "ftp://u:s3cret@sbx.example"})
    assert "s3cret" not in str(refused.value)
    for raw in ("postgresql://u:s3cret@h:54x/db", "pg ://u:s3cret@db/x"):
        with pytest.raises(ConfigError) as refused:
            Settings.from_env({"PAYMENT_DATABASE_URL": raw})
        assert "s3cret" not in str(refused.value)


def test_without_the_sandbox_its_database_directory_is_not_made(tmp_path, monkeypatch):
    """Nothing opens the sandbox's database then: no stray var/ in the working directory, and
    a read-only one is no reason to refuse to start."""
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env(
        {"PAYMENT_SANDBOX": "0", "PAYMENT_DATABASE_URL": "postgresql://db/pay"}
    )
    assert settings.sandbox_database_url == "sqlite:///var/sandbox-psp.db"
    assert list(tmp_path.iterdir()) == []
