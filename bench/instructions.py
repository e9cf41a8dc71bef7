"""Instructions per request, counted by callgrind: the payment service's create, the reference
platform's paid start and the baseline's insert, each run in process (no gunicorn, no load
generator), so the count is the same however busy the machine is.

    .venv/bin/python bench/instructions.py            # N=200 each, about 3 minutes
    .venv/bin/python bench/instructions.py -n 50      # quicker, a little less exact

Each part runs in its own `valgrind --tool=callgrind` process, which counts only what runs
inside one `functools.reduce` call: the N measured requests, after set-up and warm-up. The
platform's start calls the real payment service under gunicorn (not counted: another process),
so its count is the platform's side only. PostgreSQL's work is not counted either.
"""

import argparse
import functools
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import common

PARTS = ("baseline", "service", "platform")
WARMUP = 30


def environ(method: str, path: str, body: bytes, content_type: str, **headers: str) -> dict:
    """A WSGI environ as gunicorn would build it for this request."""
    env = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "wsgi.version": (1, 0),
    }  # fmt: skip
    env.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    return env


def caller(app: Callable, expected: str) -> Callable[[dict], None]:
    def call(env: dict) -> None:
        status: list[str] = []
        body = b"".join(app(env, lambda s, h, e=None: status.append(s)))
        if not status[0].startswith(expected):
            raise RuntimeError(f"expected {expected}, got {status[0]}: {body[:300]!r}")

    return call


@contextmanager
def baseline() -> Iterator[Callable[[int], None]]:
    import baseline_app

    with common.throwaway_database("bench_instr_baseline") as url:
        baseline_app.create_schema(url)
        os.environ["BENCH_DATABASE_URL"] = url
        call = caller(baseline_app.app, "201")

        def one(i: int) -> None:
            body = json.dumps({"name": "Bench Buyer", "email": f"b-{i}@example.com", "answer": "M"})
            call(environ("POST", "/insert", body.encode(), "application/json"))

        yield one


@contextmanager
def service() -> Iterator[Callable[[int], None]]:
    with common.throwaway_database("bench_instr_service") as url:
        env = {"PAYMENT_DATABASE_URL": url, "PAYMENT_PUBLIC_URL": "http://127.0.0.1:8000",
               "PAYMENT_LOG_FORMAT": "json", "PAYMENT_LOG_LEVEL": "WARNING",
               "PAYMENT_ALLOW_PRIVATE_CALLBACKS": "1"}  # fmt: skip
        cli = common.VENV_BIN / "payment-service"
        common.run_command([cli, "db", "upgrade"], env)
        out = common.run_command(
            [cli, "merchants", "create", "--name", "Bench", "--callback-origin",
             "http://127.0.0.1:8001", "--redirect-origin", "http://127.0.0.1:8001",
             "--allow-http", "--json"], env,
        )  # fmt: skip
        key = json.loads(out)["apiKey"]
        os.environ.update(env)
        from payment_service import create_app

        call = caller(create_app(), "201")
        expires = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0).isoformat()

        def one(i: int) -> None:
            reservation = f"res_{uuid.uuid4().hex}"
            body = {
                "reservationId": reservation, "eventId": "evt_bench", "tierId": "tier_bench",
                "orderName": "Bench event - Bench tier", "amount": 30000, "currency": "KRW",
                "customer": {"platformUserId": f"usr_{i}", "email": "buyer@example.com"},
                "successUrl": f"http://127.0.0.1:8001/reservations/{reservation}?return=success",
                "cancelUrl": f"http://127.0.0.1:8001/reservations/{reservation}?return=cancel",
                "callbackUrl": "http://127.0.0.1:8001/hooks/ticket-payments",
                "provider": "sandbox", "expiresAt": expires,
            }  # fmt: skip
            call(environ("POST", "/v1/ticket-checkouts", json.dumps(body).encode(),
                         "application/json", authorization=f"Bearer {key}",
                         idempotency_key=f"reservation:{reservation}"))  # fmt: skip

        yield one


@contextmanager
def platform() -> Iterator[Callable[[int], None]]:
    import reserve_stack as rs

    with ExitStack() as stack:
        p = rs.start_platform(stack)
        from platform_client.demo.app import close_app, create_app

        app = create_app(p.platform_env, init_db=False)
        stack.callback(close_app, app)
        call = caller(app.wsgi_app, "303")
        path = rs.register_url(p, rs.add_tier(p, capacity=10**6)).removeprefix(p.url)

        def one(i: int) -> None:
            form = {"name": "Bench Buyer", "answer": "M", "email": f"buyer-{i}@example.com"}
            call(environ("POST", path, urlencode(form).encode(),
                         "application/x-www-form-urlencoded", origin=p.url))  # fmt: skip

        yield one


def inner(part: str, n: int) -> None:
    """Under callgrind: set up, warm up, then the n counted requests in one reduce call."""
    with {"baseline": baseline, "service": service, "platform": platform}[part]() as one:
        for i in range(WARMUP):
            one(-1 - i)
        functools.reduce(lambda _, i: one(i), range(n), None)


def count(part: str, n: int, out_dir: Path) -> int:
    out = out_dir / f"{part}.callgrind"
    command = [
        "valgrind", "--tool=callgrind", "--collect-atstart=no",
        "--toggle-collect=functools_reduce", f"--callgrind-out-file={out}",
        sys.executable, __file__, "--inner", part, "-n", str(n),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=common.ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{part}: exit {done.returncode}\n{done.stderr[-2000:]}")
    found = re.search(r"^summary: (\d+)$", out.read_text(), re.MULTILINE)
    if found is None or int(found.group(1)) == 0:
        raise RuntimeError(f"{part}: callgrind counted nothing (is the python built with symbols?)")
    return int(found.group(1)) // n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="counted requests per part")
    parser.add_argument("--inner", choices=PARTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("-n must be >= 1")
    if args.inner:
        inner(args.inner, args.n)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        counts = {part: count(part, args.n, Path(tmp)) for part in PARTS}
    base = counts["baseline"]
    for part, per in counts.items():
        print(
            f"{part:9s} {per / 1e6:6.2f} M instructions per request  ({per / base:.1f}x the baseline)"
        )
    both = counts["service"] + counts["platform"]
    print(
        f"a paid start, both services' Python: {both / 1e6:.2f} M ({both / base:.1f}x the baseline)"
    )
    common.write_json(
        common.RESULTS_DIR / "instructions.json", {"n": args.n, "per_request": counts}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
