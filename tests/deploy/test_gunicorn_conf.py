"""deploy/gunicorn.conf.py: our one set of gunicorn settings, workers sized from the CPUs a
container may use, and a real server started with it that lets a request in flight finish
after SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

from payment_service.server import gunicorn_options
from tests.deploy import sources
from tests.e2e.processes import BIN, containers_env, free_port
from tests.factories import checkout_payload, make_merchant

pytestmark = pytest.mark.e2e

BASE_ENV = {"PATH": os.environ["PATH"], "PAYMENT_LOG_FORMAT": "json"}


@pytest.fixture
def conf_env(tmp_path):
    return {**BASE_ENV, "PAYMENT_DATABASE_URL": f"sqlite:///{tmp_path}/conf.db"}


def test_it_takes_the_settings_serve_uses_and_only_gunicorn_settings(conf_env):
    loaded = sources.load_gunicorn_conf(conf_env)
    made = loaded["settings"]
    assert loaded["not_gunicorn_settings"] == []  # gunicorn would silently ignore a typo
    shared = gunicorn_options(bind="x", workers=1, threads=1)
    for name in ("worker_class", "timeout", "graceful_timeout", "accesslog"):
        assert made[name] == shared[name], name
    assert made["logger_class"] == "payment_service.server.StructlogGunicornLogger"
    assert made["bind"] == f"0.0.0.0:{sources.app_port()}"
    assert made["worker_class"] == "gthread" and made["threads"] >= 2
    assert made["timeout"] >= 10 and 5 <= made["graceful_timeout"] <= 30
    assert made["worker_tmp_dir"] == "/dev/shm"
    assert made["workers"] == min(2 * loaded["cpus"] + 1, 12)
    assert made["forwarded_allow_ips"] == "127.0.0.1,::1"


def test_workers_threads_and_trusted_proxies_can_be_set(conf_env):
    made = sources.load_gunicorn_conf(
        {**conf_env, "GUNICORN_WORKERS": "3", "GUNICORN_THREADS": "6",
         "GUNICORN_FORWARDED_ALLOW_IPS": "*"}
    )["settings"]  # fmt: skip
    assert (made["workers"], made["threads"], made["forwarded_allow_ips"]) == (3, 6, "*")


def test_bad_settings_stop_it_with_one_line(conf_env):
    bad_workers = sources.run_gunicorn_conf({**conf_env, "GUNICORN_WORKERS": "many"})
    assert bad_workers.returncode != 0
    assert "GUNICORN_WORKERS must be a whole number" in bad_workers.stderr
    bad_service = sources.run_gunicorn_conf({**conf_env, "PAYMENT_LOG_FORMAT": "xml"})
    assert bad_service.returncode == 2
    assert bad_service.stderr.strip().splitlines() == [
        "payment-service: configuration error: PAYMENT_LOG_FORMAT must be 'json' or 'console', not 'xml'"
    ]


def test_the_cpu_count_follows_the_containers_limit(conf_env, tmp_path):
    v2_limited, v2_unlimited, v1_limited = (tmp_path / name for name in ("a", "b", "c"))
    (v2_limited).mkdir()
    (v2_limited / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: 2 workers' worth
    (v2_unlimited).mkdir()
    (v2_unlimited / "cpu.max").write_text("max 100000\n")
    (v1_limited / "cpu").mkdir(parents=True)
    (v1_limited / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1_limited / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    dirs = [str(v2_limited), str(v2_unlimited), str(v1_limited)]
    loaded = sources.load_gunicorn_conf(conf_env, cgroups=dirs)
    counted = [loaded["cpus_for"][d] for d in dirs]
    assert counted == [2, len(os.sched_getaffinity(0)), 3]


def test_a_request_in_flight_finishes_after_sigterm(database_url, db, tmp_path):
    """The server under the containers' settings: SIGTERM arrives while a checkout request is
    half sent; the rest of the body follows, the checkout is created and answered, and the
    server then exits 0. Its log lines are JSON, the request's line carries its ids."""
    origin = f"http://127.0.0.1:{free_port()}"
    merchant = make_merchant(db, origins=(origin,), allow_http=True)
    port = free_port()
    env = containers_env(database_url, tmp_path)
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", str(sources.GUNICORN_CONF),
             "--bind", f"127.0.0.1:{port}", "payment_service.wsgi:app"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=sources.ROOT,
        )  # fmt: skip
    try:
        wait_listening(port, server, log_path)
        body = json.dumps(
            checkout_payload(
                "res_sigterm", successUrl=f"{origin}/ok", cancelUrl=f"{origin}/cancel",
                callbackUrl=f"{origin}/hooks",
            )
        ).encode()  # fmt: skip
        head = (
            f"POST /v1/ticket-checkouts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {merchant.api_key}\r\nIdempotency-Key: {uuid.uuid4()}\r\n"
            f"X-Request-ID: req_sigterm_test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(head + body[:20])
            time.sleep(1.0)  # the worker has the request and waits for its body
            server.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert server.poll() is None, "the server quit with a request in flight"
            client.sendall(body[20:])
            answer = read_all(client)
        assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["reservationId"] == "res_sigterm"
        assert server.wait(25) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert any(line["event"] == "Handling signal: term" for line in lines)
    [request_line] = [
        line
        for line in lines
        if line["event"] == "http.request" and line["path"] == "/v1/ticket-checkouts"
    ]
    assert request_line["requestId"] == "req_sigterm_test"
    assert request_line["merchantId"] == merchant.merchant_id
    assert request_line["checkoutId"].startswith("chk_") and request_line["status"] == 201


def wait_listening(port: int, server: subprocess.Popen[bytes], log_path, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"gunicorn exited early:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if read_all(probe).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not become ready:\n{log_path.read_text()}")


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
