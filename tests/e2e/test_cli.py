"""The payment-service command as a real process: migrations, merchants, serve, bad config."""

import json

import pytest
import requests

from tests.e2e.processes import BIN, Server, free_port, run_cli, service_env

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(database_url, db):
    return service_env(database_url)


def test_bad_configuration_is_one_line_and_exit_2(env):
    result = run_cli(["db", "upgrade"], {**env, "PAYMENT_DATABASE_URL": "pg ://u:s3cret@db/x"})
    assert result.returncode == 2
    # The URL is not repeated: it may hold a password.
    assert result.stderr.strip().splitlines() == [
        "payment-service: configuration error: PAYMENT_DATABASE_URL is not a database URL"
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_production_without_secret_key_refuses_to_start(env):
    result = run_cli(["serve"], {**env, "PAYMENT_ENV": "production"})
    assert result.returncode == 2
    assert "PAYMENT_SECRET_KEY is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_then_merchants_create_list_rotate(env):
    assert run_cli(["db", "upgrade"], env).returncode == 0
    created = run_cli(
        ["merchants", "create", "--name", "Race Co", "--callback-origin", "https://hooks.race.example",
         "--callback-origin", "https://backup.race.example", "--redirect-origin", "https://race.example",
         "--json"],
        env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    payload = json.loads(created.stdout)
    assert set(payload) == {"merchantId", "apiKey", "signingSecret"}
    assert payload["apiKey"].startswith("sk_") and payload["signingSecret"].startswith("whsec_")

    listed = json.loads(run_cli(["merchants", "list", "--json"], env).stdout)
    assert [m["merchantId"] for m in listed] == [payload["merchantId"]]
    assert listed[0]["callbackOrigins"] == [
        "https://backup.race.example",
        "https://hooks.race.example",
    ]
    assert payload["apiKey"] not in json.dumps(listed)

    rotated = run_cli(["merchants", "rotate-secret", payload["merchantId"], "--json"], env)
    assert rotated.returncode == 0, rotated.stderr
    secrets = json.loads(rotated.stdout)
    assert [s["secret"] for s in secrets["activeSecrets"]] == [
        secrets["signingSecret"],
        payload["signingSecret"],
    ]


def test_merchants_create_refuses_bad_origin(env):
    result = run_cli(
        ["merchants", "create", "--name", "X", "--callback-origin", "https://x.example/path",
         "--redirect-origin", "https://x.example", "--json"], env,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_serve_answers_health_docs_and_401_with_json_logs(env, tmp_path):
    port = free_port()
    server = Server(
        [str(BIN / "payment-service"), "serve", "--port", str(port)],
        env,
        port,
        tmp_path / "serve.log",
    )
    server.start()
    try:
        assert requests.get(server.url + "/healthz", timeout=5).json() == {"status": "ok"}
        assert requests.get(server.url + "/docs", timeout=5).status_code == 200
        response = requests.post(
            server.url + "/v1/ticket-checkouts",
            json={},
            headers={"X-Request-ID": "req-e2e-1"},
            timeout=5,
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.json()["error"]["requestId"] == "req-e2e-1"
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    requests_logged = [line for line in lines if line.get("event") == "http.request"]
    assert any(
        line["requestId"] == "req-e2e-1"
        and line["status"] == 401
        and line["path"] == "/v1/ticket-checkouts"
        for line in requests_logged
    )
    assert all("duration_ms" in line and "method" in line for line in requests_logged)


@pytest.mark.parametrize(
    "command",
    [["db", "upgrade"], ["merchants", "list"], ["deliveries", "list"], ["refunds", "list"]],
)
def test_an_unreachable_database_is_one_line_and_exit_3(env, command):
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{port}/payments"
    result = run_cli(command, {**env, "PAYMENT_DATABASE_URL": url})
    assert result.returncode == 3, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("payment-service: database unavailable: ")
    assert str(port) in line  # says which server
    assert "s3cret" not in line
