"""Benchmark callback delivery: webhook-to-callback latency, and throughput beside requests.post."""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import common
import requests

sys.path.insert(0, str(common.ROOT))
from tests.factories import checkout_payload, sandbox_payment_webhook

RESULTS_PATH = common.RESULTS_DIR / "callback_latency.json"
GOALS = "goals: p50 <= 50 ms, p99 <= 250 ms; delivery throughput >= 0.7x plain requests.post"


class Platform:
    """A fast platform stand-in: answers 204 and notes when each checkout's callback arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.changed = threading.Condition()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.perf_counter()
                checkout_id = json.loads(body)["data"]["checkoutId"]
                with platform.changed:
                    platform.arrivals.setdefault(checkout_id, now)
                    platform.changed.notify_all()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, ids: set[str], timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: ids <= self.arrivals.keys(), timeout):
                missing = len(ids - self.arrivals.keys())
                raise RuntimeError(f"{missing} callbacks did not arrive within {timeout} s")


@contextlib.contextmanager
def worker(env: dict[str, str]) -> Iterator[None]:
    log = (common.RESULTS_DIR / "callback-worker.log").open("ab")
    proc = subprocess.Popen([common.VENV_BIN / "payment-service", "worker"], cwd=common.ROOT,
                            env=common.subprocess_env(env), stdout=log, stderr=log, start_new_session=True)  # fmt: skip
    try:
        time.sleep(1.5)  # its start-up, so that it is listening before the measured payments
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()


def pay(base_url: str, api_key: str, origin: str, i: int) -> tuple[str, float]:
    """Create a checkout and pay it with a signed sandbox webhook; (checkoutId, time of the 200)."""
    payload = checkout_payload(f"res_{i}_{time.time_ns()}", successUrl=f"{origin}/ok",
                               cancelUrl=f"{origin}/cancel", callbackUrl=f"{origin}/hooks")  # fmt: skip
    created = requests.post(f"{base_url}/v1/ticket-checkouts", json=payload, timeout=30,
                            headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": payload["reservationId"]})  # fmt: skip
    created.raise_for_status()
    checkout_id = created.json()["checkoutId"]
    body, headers = sandbox_payment_webhook(checkout_id)
    acked = requests.post(
        f"{base_url}/v1/providers/sandbox/webhooks", data=body, headers=headers, timeout=30
    )
    acked.raise_for_status()
    return checkout_id, time.perf_counter()


def pay_all(
    base_url: str, api_key: str, origin: str, count: int, concurrency: int
) -> dict[str, float]:
    with ThreadPoolExecutor(concurrency) as pool:
        return dict(pool.map(lambda i: pay(base_url, api_key, origin, i), range(count)))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def plain_posts(origin: str, count: int, concurrency: int, platform: Platform) -> float:
    """The baseline: requests.post of `count` signed callbacks at the worker's concurrency."""
    from shared_contracts.signing import generate_secret, webhook_headers

    secret = generate_secret()
    bodies = [
        json.dumps({"type": "ticket_payment.paid", "data": {"checkoutId": f"plain_{i}"}}).encode()
        for i in range(count)
    ]

    def post(i: int) -> None:
        headers = webhook_headers([secret], f"evt_plain_{i}", bodies[i])
        requests.post(
            f"{origin}/hooks", data=bodies[i], headers=headers, timeout=15, allow_redirects=False
        ).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, range(count)))
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, default=500, help="payments for the latency run")
    parser.add_argument("--backlog", type=int, default=600, help="callbacks for the throughput run")
    args = parser.parse_args()
    common.interrupt_on_sigterm()
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    platform = Platform()
    with common.throwaway_database("bench_callbacks") as database_url:
        env = {"PAYMENT_DATABASE_URL": database_url, "PAYMENT_LOG_FORMAT": "json", "PAYMENT_LOG_LEVEL": "WARNING",
               "PAYMENT_ALLOW_PRIVATE_CALLBACKS": "1",
               "SANDBOX_DATABASE_URL": f"sqlite:///{common.RESULTS_DIR / 'bench-sandbox.db'}"}  # fmt: skip
        common.run_command([common.VENV_BIN / "payment-service", "db", "upgrade"], env)
        merchant = json.loads(common.run_command(
            [common.VENV_BIN / "payment-service", "merchants", "create", "--name", "Bench", "--callback-origin",
             platform.origin, "--redirect-origin", platform.origin, "--allow-http", "--json"], env))  # fmt: skip
        with common.gunicorn_server(
            "callback-service", "payment_service.wsgi:app", env, ready_path="/readyz"
        ) as server:
            with worker(env):
                sent = pay_all(
                    server.base_url, merchant["apiKey"], platform.origin, args.payments, 4
                )
                platform.wait_for(set(sent), timeout=120)
            latencies = [max(0.0, platform.arrivals[c] - t) * 1000 for c, t in sent.items()]
            backlog = pay_all(
                server.base_url, merchant["apiKey"], platform.origin, args.backlog, 8
            )  # no worker: they queue
            with worker(env):
                platform.wait_for(set(backlog), timeout=300)
            arrivals = sorted(platform.arrivals[c] for c in backlog)
            delivered_per_s = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    plain_per_s = plain_posts(platform.origin, args.backlog, 8, platform)
    platform.server.shutdown()
    result = {
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "p99": percentile(latencies, 99), "n": len(latencies)},
        "throughput_per_s": {"delivery": delivered_per_s, "plain_requests_post": plain_per_s, "ratio": delivered_per_s / plain_per_s, "n": len(arrivals)},
    }  # fmt: skip
    lat, thr = result["latency_ms"], result["throughput_per_s"]
    print(f"latency from webhook 200 to callback arrival over {lat['n']} payments (ms): "
          f"p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  p99 {lat['p99']:.1f}")  # fmt: skip
    print(f"throughput over {thr['n']} callbacks: delivery {thr['delivery']:.0f}/s, plain requests.post "
          f"{thr['plain_requests_post']:.0f}/s, ratio {thr['ratio']:.2f}x")  # fmt: skip
    passed = lat["p50"] <= 50 and lat["p99"] <= 250 and thr["ratio"] >= 0.7
    print(f"{GOALS}: {'PASS' if passed else 'FAIL'}")
    common.write_json(RESULTS_PATH, result)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
