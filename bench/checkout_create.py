"""Benchmark POST /v1/ticket-checkouts under gunicorn against a bare Flask + psycopg baseline."""

import argparse
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack

import baseline_app
import common
import cputime

ORIGIN = "https://platform.example"
GOAL_CONCURRENCY = 32
GOAL = f"goal: throughput >= 0.5x baseline and p99 <= 3x baseline at concurrency {GOAL_CONCURRENCY}"
RESULTS_PATH = common.RESULTS_DIR / "checkout_create.json"
SERVICE_ENV = {
    "PAYMENT_LOG_FORMAT": "json",
    "PAYMENT_LOG_LEVEL": "WARNING",
    "PAYMENT_ALLOW_PRIVATE_CALLBACKS": "1",
}
# (URL to POST to, extra headers, a meter of the server's and its database's CPU time)
Target = tuple[str, dict[str, str], cputime.CpuMeter]
Outcome = dict[int, common.LoadResult] | str  # results per concurrency, or the setup error
CPU: dict[str, dict[int, dict[str, float]]] = {}  # --cpu: name -> level -> CPU ms per request


BODY = (  # the body; <i> is the request number
    '{"reservationId": "res_<i>", "eventId": "evt_42", "tierId": "tier_7", '
    '"orderName": "Seoul Marathon 2027 - Full course", "amount": 30000, "currency": "KRW", '
    '"customer": {"platformUserId": "u_<i>", "name": "Kim", "email": "kim@example.com"}, '
    '"successUrl": "https://platform.example/ok", "cancelUrl": "https://platform.example/cancel", '
    '"callbackUrl": "https://platform.example/hooks"}'
)


def specs(first: int, count: int, headers: dict[str, str]) -> list[common.RequestSpec]:
    """Requests `first` .. `first + count - 1`, each with its own reservation and key."""
    base = {"Content-Type": "application/json", **headers}
    return [
        ({**base, "Idempotency-Key": f"bench-{i}"}, BODY.replace("<i>", str(i)).encode())
        for i in range(first, first + count)
    ]


def setup_service(stack: ExitStack) -> Target:
    url = stack.enter_context(common.throwaway_database("bench_service"))
    env = {"PAYMENT_DATABASE_URL": url, **SERVICE_ENV}
    cli = common.VENV_BIN / "payment-service"
    common.run_command([cli, "db", "upgrade"], env)
    create = f"merchants create --name Bench --callback-origin {ORIGIN} --redirect-origin {ORIGIN}"
    out = common.run_command([cli, *create.split(), "--json"], env)
    try:
        api_key = json.loads(out)["apiKey"]
    except (ValueError, KeyError, TypeError):
        raise RuntimeError(f"`merchants create --json` printed no apiKey: {out!r}") from None
    server = stack.enter_context(
        common.gunicorn_server("service", "payment_service.wsgi:app", env, ready_path="/readyz")
    )
    print(f"service: merchant created, gunicorn ready at {server.base_url} ({server.log_path})")
    meter = cputime.CpuMeter({"gunicorn": cputime.worker_pids(server)}, {"postgres": url})
    return f"{server.base_url}/v1/ticket-checkouts", {"Authorization": f"Bearer {api_key}"}, meter


def setup_baseline(stack: ExitStack) -> Target:
    url = stack.enter_context(common.throwaway_database("bench_baseline"))
    baseline_app.create_schema(url)
    env = {"BENCH_DATABASE_URL": url}
    chdir = str(common.BENCH_DIR)
    server = stack.enter_context(
        common.gunicorn_server("baseline", "baseline_app:app", env, chdir=chdir)
    )
    print(f"baseline: gunicorn ready at {server.base_url} ({server.log_path})")
    meter = cputime.CpuMeter({"gunicorn": cputime.worker_pids(server)}, {"postgres": url})
    return f"{server.base_url}/insert", {}, meter


def measure(
    name: str,
    setup: Callable[[ExitStack], Target],
    levels: Sequence[int],
    n: int,
    warmup: int,
    cpu: bool = False,
) -> Outcome:
    """Per level: a warm-up, a checkpoint, then `n` measured requests. Cleans up on any exit.
    With `cpu`, also the CPU time per request of gunicorn, PostgreSQL and the load generator."""
    results: dict[int, common.LoadResult] = {}
    with ExitStack() as stack:
        try:
            url, headers, meter = setup(stack)
        except Exception as exc:
            print(f"{name}: SETUP FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            return f"{type(exc).__name__}: {exc}"
        for k, c in enumerate(levels):
            first = k * (warmup + n)  # every request of the run has its own reservation
            warm = common.run_load(url, specs(first, warmup, headers), c)
            if warm.errors:
                print(f"{name} c={c} warm-up: {dict(warm.errors)} unexpected answers")
            common.checkpoint()
            load = functools.partial(common.run_load, url, specs(first + warmup, n, headers), c)
            res = results[c] = meter.run(load) if cpu else load()
            line = f"{name} c={c}: {res.throughput:.0f} req/s, p99 {res.percentile(99):.1f} ms"
            print(line + (f" -- ERRORS: {res.describe_errors()}" if res.errors else ""))
            if cpu:
                shares = CPU.setdefault(name, {})[c] = meter.per_request_ms(n)
                print(
                    f"{name} c={c}: CPU ms per request: "
                    + ", ".join(f"{k} {v}" for k, v in shares.items())
                )
    return results


def ratios(service: Outcome, baseline: Outcome, c: int) -> tuple[float, float] | None:
    """(throughput, p99) of the service over the baseline at concurrency `c`, if both ran."""
    if isinstance(service, str) or isinstance(baseline, str) or c not in service:
        return None
    s, b = service[c], baseline[c]
    return s.throughput / b.throughput, s.percentile(99) / b.percentile(99)


def error_count(o: Outcome, c: int) -> int | None:
    return None if isinstance(o, str) else sum(o[c].errors.values())


def goal(service: Outcome, baseline: Outcome) -> tuple[bool, str]:
    found = ratios(service, baseline, GOAL_CONCURRENCY)
    if found is None:
        return False, "no figures: a setup failed or that concurrency was not run"
    counts = {"service": error_count(service, GOAL_CONCURRENCY)}
    counts["baseline"] = error_count(baseline, GOAL_CONCURRENCY)
    if errors := [f"{name} had {n} errors" for name, n in counts.items() if n]:
        return False, "run with errors, figures are not valid: " + "; ".join(errors)
    throughput, p99 = found
    return throughput >= 0.5 and p99 <= 3.0, f"throughput {throughput:.2f}x, p99 {p99:.2f}x"


def cells(o: Outcome, c: int) -> list[str]:
    if isinstance(o, str):
        return ["setup failed", "-", "-", "-"]
    r = o[c]
    return [f"{r.throughput:.0f}", *(f"{r.percentile(p):.1f}" for p in (50, 95, 99))]


def report(service: Outcome, baseline: Outcome, levels: Sequence[int]) -> tuple[bool, dict]:
    """Print the table and the goal check; return (passed, JSON-ready results)."""
    rows = []
    for c in levels:
        found = ratios(service, baseline, c)
        shown = [f"{x:.2f}x" for x in found] if found else ["-", "-"]
        errs = f"{error_count(service, c)}/{error_count(baseline, c)}".replace("None", "-")
        rows.append([c, *cells(service, c), *cells(baseline, c), *shown, errs])
    print()
    headers = (
        "conc|svc req/s|p50|p95|p99|base req/s|p50|p95|p99|req/s ratio|p99 ratio|errors svc/base"
    )
    common.print_table(headers.split("|"), rows)
    print("(latencies in ms; ratios are service/baseline)")
    passed, detail = goal(service, baseline)
    print(f"\n{GOAL}: {'PASS' if passed else 'FAIL'} ({detail})")
    data: dict[str, object] = {"goal": {"text": GOAL, "passed": passed, "detail": detail}}
    found = {c: ratios(service, baseline, c) for c in levels}
    data["ratios"] = {c: r and {"throughput": r[0], "p99": r[1]} for c, r in found.items()}
    for name, o in (("service", service), ("baseline", baseline)):
        data[name] = {"setup_error": o} if isinstance(o, str) else {c: o[c].summary() for c in o}
    return passed, data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per run")
    parser.add_argument(
        "--concurrency",
        default=[8, 32],
        type=lambda s: [int(c) for c in s.split(",")],
        help="comma-separated levels (default 8,32)",
    )
    parser.add_argument("--warmup", type=int, default=100, help="warm-up requests per run")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="also print CPU ms per request of gunicorn, PostgreSQL and the load generator",
    )
    args = parser.parse_args()
    levels: list[int] = args.concurrency
    if args.requests < 1 or args.warmup < 0 or min(levels) < 1:
        parser.error("--requests and each concurrency level must be >= 1, --warmup >= 0")
    common.interrupt_on_sigterm()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:  # the baseline first: it is the reference, and it must not inherit the service's I/O
        baseline = measure("baseline", setup_baseline, levels, args.requests, args.warmup, args.cpu)
        service = measure("service", setup_service, levels, args.requests, args.warmup, args.cpu)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped and databases dropped", file=sys.stderr)
        return 130
    passed, data = report(service, baseline, levels)
    meta = {
        "benchmark": "checkout_create",
        "started_at": started,
        "requests": args.requests,
        "warmup": args.warmup,
        "concurrency": levels,
        "gunicorn": " ".join(common.GUNICORN_SETTINGS),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if CPU:
        data["cpu_ms_per_request"] = CPU
    common.write_json(RESULTS_PATH, {**meta, **data})
    print(f"results: {RESULTS_PATH.relative_to(common.ROOT)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
