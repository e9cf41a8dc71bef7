"""Benchmark paid-ticket starts on the reference platform (a held seat and a checkoutUrl, through
the platform's backend, the client and the payment service, all under gunicorn on PostgreSQL)
beside the bare Flask + psycopg baseline, and the rush of 500 buyers for 100 seats."""

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import common
import cputime
import reserve_stack as rs

GOAL_LEVELS = (8, 32)
MIN_RATIO = 0.25
RUSH_BUYERS, RUSH_SEATS, RUSH_SECONDS = 500, 100, 5.0
GOAL = (
    f"goal: starts >= {MIN_RATIO}x the baseline's throughput at concurrency "
    f"{' and '.join(map(str, GOAL_LEVELS))}; {RUSH_BUYERS} buyers for {RUSH_SEATS} seats settled "
    f"in < {RUSH_SECONDS:g} s with exactly {RUSH_SEATS} holds"
)
RESULTS_PATH = common.RESULTS_DIR / "reserve.json"


@dataclass
class Run:
    """One side's figures: per concurrency level (and, for the platform, the rush)."""

    levels: dict[int, common.LoadResult] = field(default_factory=dict)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # CPU ms/request by process
    problems: dict[int, str] = field(default_factory=dict)  # the ledger disagrees with answers
    rush: common.LoadResult | None = None
    rush_problem: str | None = None
    setup_error: str | None = None


def ok_count(res: common.LoadResult) -> int:
    return len(res.latencies_ms) - sum(res.errors.values())


def report_level(name: str, res: common.LoadResult, cpu: dict[str, float]) -> None:
    line = (f"{name} c={res.concurrency}: {res.throughput:.0f} req/s, "
            f"p99 {res.percentile(99):.1f} ms, CPU ms/request {cpu}")  # fmt: skip
    print(line + (f" -- ERRORS: {res.describe_errors()}" if res.errors else ""))


def measure_baseline(levels: Sequence[int], n: int, warmup: int) -> Run:
    run = Run()
    with ExitStack() as stack:
        try:
            b = rs.start_baseline(stack)
        except Exception as exc:
            run.setup_error = f"{type(exc).__name__}: {exc}"
            print(f"baseline: SETUP FAILED: {run.setup_error}", file=sys.stderr)
            return run
        for c in levels:
            warm = common.run_load(b.url, rs.json_specs(f"w{c}", warmup), c)
            if warm.errors:
                print(f"baseline c={c} warm-up: {warm.describe_errors()}")
            common.checkpoint()
            meter = cputime.CpuMeter(
                {"gunicorn": cputime.worker_pids(b.server)}, {"postgres": b.database}
            )
            res = run.levels[c] = meter.run(
                lambda c=c: common.run_load(b.url, rs.json_specs(f"m{c}", n), c)
            )
            run.cpu[str(c)] = meter.per_request_ms(n)
            report_level("baseline", res, run.cpu[str(c)])
    return run


def measure_platform(levels: Sequence[int], n: int, warmup: int) -> Run:
    run = Run()
    with ExitStack() as stack:
        try:
            p = rs.start_platform(stack)
        except Exception as exc:
            run.setup_error = f"{type(exc).__name__}: {exc}"
            print(f"platform: SETUP FAILED: {run.setup_error}", file=sys.stderr)
            return run

        def starts(tier_id: str, tag: str, count: int, c: int) -> common.LoadResult:
            specs = rs.form_specs(tag, count, p.url)
            url = rs.register_url(p, tier_id)
            return common.run_load(url, specs, c, expected=303, allow_redirects=False)

        for c in levels:
            tier_id = rs.add_tier(p, capacity=warmup + n)  # every start of the level gets a seat
            warm = starts(tier_id, f"w{c}", warmup, c)
            if warm.errors:
                print(f"platform c={c} warm-up: {warm.describe_errors()}")
            common.checkpoint()
            meter = platform_meter(p)
            res = run.levels[c] = meter.run(lambda c=c, t=tier_id: starts(t, f"m{c}", n, c))
            run.cpu[str(c)] = meter.per_request_ms(n)
            report_level("platform", res, run.cpu[str(c)])
            if problem := rs.check_holds(p, tier_id, ok_count(warm) + ok_count(res)):
                run.problems[c] = problem
                print(f"platform c={c}: {problem}")
        tier_id = rs.add_tier(p, capacity=RUSH_SEATS)
        common.checkpoint()
        meter = platform_meter(p)
        rush = run.rush = meter.run(lambda: starts(tier_id, "rush", RUSH_BUYERS, RUSH_BUYERS))
        run.cpu["rush"] = meter.per_request_ms(RUSH_BUYERS)
        run.rush_problem = rs.check_holds(p, tier_id, RUSH_SEATS)
        other = [status for status in rush.errors if status != "409"]
        print(f"rush: {ok_count(rush)} holds, {rush.errors.get('409', 0)} sold out in "
              f"{rush.seconds:.2f} s, CPU ms/request {run.cpu['rush']}"
              + (f" -- ERRORS: {rush.describe_errors()}" if other else ""))  # fmt: skip
    return run


def platform_meter(p: rs.Platform) -> cputime.CpuMeter:
    groups = {"platform": cputime.worker_pids(p.platform)}
    groups["service"] = cputime.worker_pids(p.service)
    service_db, platform_db = p.databases
    return cputime.CpuMeter(groups, {"service pg": service_db, "platform pg": platform_db})


def rush_verdict(run: Run) -> tuple[bool, str]:
    if run.rush is None:
        return False, "not run"
    rush = run.rush
    sold_out = rush.errors.get("409", 0)
    other = sum(rush.errors.values()) - sold_out
    sold_out_page = sold_out == 0 or 'data-error="sold_out"' in rush.error_samples["409"]
    detail = (f"{ok_count(rush)} holds, {sold_out} sold out, {other} other answers, "
              f"settled in {rush.seconds:.2f} s; {run.rush_problem or 'the ledger agrees'}")  # fmt: skip
    passed = (ok_count(rush) == RUSH_SEATS and sold_out == RUSH_BUYERS - RUSH_SEATS
              and other == 0 and sold_out_page and run.rush_problem is None
              and rush.seconds < RUSH_SECONDS)  # fmt: skip
    return passed, detail


def goal(plat: Run, base: Run) -> tuple[bool, str]:
    if plat.setup_error or base.setup_error:
        return False, "no figures: a setup failed"
    if missing := [c for c in GOAL_LEVELS if c not in plat.levels]:
        return False, f"concurrency {missing} not run"
    invalid = [f"c={c}: {n} errors" for c in GOAL_LEVELS
               if (n := sum(plat.levels[c].errors.values()) + sum(base.levels[c].errors.values()))]  # fmt: skip
    invalid += [f"c={c}: {problem}" for c, problem in plat.problems.items()]
    if invalid:
        return False, "run with errors, figures are not valid: " + "; ".join(invalid)
    ratios = {c: plat.levels[c].throughput / base.levels[c].throughput for c in GOAL_LEVELS}
    rush_ok, rush_detail = rush_verdict(plat)
    shown = ", ".join(f"{r:.2f}x at c={c}" for c, r in ratios.items())
    passed = all(r >= MIN_RATIO for r in ratios.values()) and rush_ok
    return passed, f"throughput {shown}; rush: {rush_detail}"


def cells(run: Run, c: int) -> list[str]:
    res = run.levels.get(c)
    if res is None:
        return ["-"] * 5
    figures = [f"{res.throughput:.0f}", *(f"{res.percentile(p):.1f}" for p in (50, 95, 99))]
    return [*figures, f"{run.cpu[str(c)]['total']:.1f}"]


def report(plat: Run, base: Run, levels: Sequence[int]) -> tuple[bool, dict]:
    """Print the table, the rush and the goal check; return (passed, JSON-ready results)."""
    rows = []
    for c in levels:
        s, b = plat.levels.get(c), base.levels.get(c)
        ratio = f"{s.throughput / b.throughput:.2f}x" if s and b else "-"
        errs = "/".join(str(sum(r.errors.values())) if r else "-" for r in (s, b))
        rows.append([c, *cells(plat, c), *cells(base, c), ratio, errs])
    print()
    headers = "conc|starts/s|p50|p95|p99|CPU ms|base req/s|p50|p95|p99|CPU ms|ratio|errors p/b"
    common.print_table(headers.split("|"), rows)
    print("(latencies in ms; CPU ms = CPU per request of every process of the run: gunicorn "
          "workers, PostgreSQL backends of its databases, load generator)")  # fmt: skip
    if plat.rush is not None:
        r = plat.rush
        print(f"rush, {RUSH_BUYERS} buyers at once for {RUSH_SEATS} seats: {rush_verdict(plat)[1]}; "
              f"p50 {r.percentile(50):.0f} ms, p99 {r.percentile(99):.0f} ms")  # fmt: skip
    passed, detail = goal(plat, base)
    print(f"\n{GOAL}: {'PASS' if passed else 'FAIL'} ({detail})")
    data: dict[str, object] = {"goal": {"text": GOAL, "passed": passed, "detail": detail}}
    for name, run in (("baseline", base), ("platform", plat)):
        data[name] = {"setup_error": run.setup_error} if run.setup_error else {
            "levels": {c: r.summary() for c, r in run.levels.items()},
            "cpu_ms_per_request": run.cpu,
        }  # fmt: skip
    if plat.rush is not None:
        data["rush"] = {**plat.rush.summary(), "buyers": RUSH_BUYERS, "seats": RUSH_SEATS,
                        "holds": ok_count(plat.rush), "ledger_problem": plat.rush_problem}  # fmt: skip
    data["ledger_problems"] = plat.problems
    return passed, data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="measured starts per level")
    parser.add_argument("--concurrency", default=[8, 32], help="comma-separated levels (8,32)",
                        type=lambda s: [int(c) for c in s.split(",")])  # fmt: skip
    parser.add_argument("--warmup", type=int, default=100, help="warm-up requests per level")
    args = parser.parse_args()
    levels: list[int] = args.concurrency
    if args.requests < 1 or args.warmup < 0 or min(levels) < 1:
        parser.error("--requests and each concurrency level must be >= 1, --warmup >= 0")
    common.interrupt_on_sigterm()
    started, load_before = time.strftime("%Y-%m-%dT%H:%M:%S%z"), os.getloadavg()
    try:  # the baseline first: it is the reference, and it must not inherit the services' I/O
        base = measure_baseline(levels, args.requests, args.warmup)
        plat = measure_platform(levels, args.requests, args.warmup)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped and databases dropped", file=sys.stderr)
        return 130
    passed, data = report(plat, base, levels)
    meta = {
        "benchmark": "reserve",
        "started_at": started,
        "requests": args.requests,
        "warmup": args.warmup,
        "concurrency": levels,
        "gunicorn": " ".join(common.GUNICORN_SETTINGS),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average": {"start": load_before, "end": os.getloadavg()},  # 1, 5, 15 min
    }
    common.write_json(RESULTS_PATH, {**meta, **data})
    print(f"results: {RESULTS_PATH.relative_to(common.ROOT)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
