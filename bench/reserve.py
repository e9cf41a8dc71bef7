"""Benchmark paid-ticket starts on the reference platform (a held seat and a checkoutUrl, through
the platform's backend, the client and the payment service, all under gunicorn on PostgreSQL)
beside the bare Flask + psycopg baseline, and the rush of 500 buyers for 100 seats."""

import argparse
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import common
import cputime
import reserve_stack as rs

GOAL_LEVELS = (8, 32)
MIN_RATIO = 0.25
RUSH_BUYERS, RUSH_SEATS, RUSH_SECONDS = 500, 100, 5.0
#: Baseline requests per platform start in each round, so that both chunks of a round take a
#: similar time and the baseline's chunk is long beside its ramp-up and drain at c=32.
BASELINE_SHARE = 4
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
    rounds: dict[int, list[float]] = field(default_factory=dict)  # req/s of each round's chunk


def ok_count(res: common.LoadResult) -> int:
    return len(res.latencies_ms) - sum(res.errors.values())


def report_level(name: str, res: common.LoadResult, cpu: dict[str, float]) -> None:
    line = (f"{name} c={res.concurrency}: {res.throughput:.0f} req/s, "
            f"p99 {res.percentile(99):.1f} ms, CPU ms/request {cpu}")  # fmt: skip
    print(line + (f" -- ERRORS: {res.describe_errors()}" if res.errors else ""))


def measure(levels: Sequence[int], n: int, warmup: int, rounds: int) -> tuple[Run, Run]:
    """(platform, baseline): both stacks up at once, and per level the two measured in turns
    (`rounds` rounds of a baseline chunk and a platform chunk, in the order B P, P B, B P, ...),
    so that a steady change in the machine's speed during the run reaches both sides alike. Each side's figures
    add up its chunks; then the rush, on the platform only."""
    plat, base = Run(), Run()
    with ExitStack() as stack:
        try:
            b = rs.start_baseline(stack)
        except Exception as exc:
            base.setup_error = f"{type(exc).__name__}: {exc}"
            print(f"baseline: SETUP FAILED: {base.setup_error}", file=sys.stderr)
        try:
            p = rs.start_platform(stack)
        except Exception as exc:
            plat.setup_error = f"{type(exc).__name__}: {exc}"
            print(f"platform: SETUP FAILED: {plat.setup_error}", file=sys.stderr)
        if base.setup_error or plat.setup_error:
            return plat, base

        def base_meter() -> cputime.CpuMeter:
            return cputime.CpuMeter(
                {"gunicorn": cputime.worker_pids(b.server)}, {"postgres": b.database}
            )

        def baseline(tag: str, count: int, c: int) -> common.LoadResult:
            return common.run_load(b.url, rs.json_specs(tag, count), c)

        for c in levels:
            tier_id = rs.add_tier(p, capacity=warmup + n)  # every start of the level gets a seat

            def starts(
                tag: str, count: int, c: int = c, tier_id: str = tier_id
            ) -> common.LoadResult:
                return form_starts(p, tier_id, tag, count, c)

            warm = starts(f"w{c}", warmup)
            for name, res in (("platform", warm), ("baseline", baseline(f"w{c}", warmup, c))):
                if res.errors:
                    print(f"{name} c={c} warm-up: {res.describe_errors()}")
            chunks: dict[str, list[common.LoadResult]] = {"platform": [], "baseline": []}
            used: dict[str, Counter[str]] = {"platform": Counter(), "baseline": Counter()}
            for i, count in enumerate(split(n, rounds)):
                turns = [
                    ("platform", lambda: platform_meter(p),
                     lambda t=f"m{c}r{i}", k=count: starts(t, k)),
                    ("baseline", base_meter,
                     lambda t=f"m{c}r{i}", k=count * BASELINE_SHARE, c=c: baseline(t, k, c)),
                ]  # fmt: skip
                for name, make_meter, work in turns if i % 2 else reversed(turns):
                    common.checkpoint()
                    meter = make_meter()  # the workers now: gunicorn may have replaced one
                    chunks[name].append(meter.run(work))
                    used[name].update(meter.used)
            for name, run in (("platform", plat), ("baseline", base)):
                res = run.levels[c] = common.LoadResult.combine(chunks[name])
                run.cpu[str(c)] = cputime.per_request_ms(used[name], len(res.latencies_ms))
                run.rounds[c] = [round(r.throughput, 1) for r in chunks[name]]
                report_level(name, res, run.cpu[str(c)])
            if problem := rs.check_holds(p, tier_id, ok_count(warm) + ok_count(plat.levels[c])):
                plat.problems[c] = problem
                print(f"platform c={c}: {problem}")
            if plat.levels[c].errors:
                show_logs(p)
        tier_id = rs.add_tier(p, capacity=RUSH_SEATS)
        common.checkpoint()
        plat_meter = platform_meter(p)
        rush = plat.rush = plat_meter.run(
            lambda: form_starts(p, tier_id, "rush", RUSH_BUYERS, RUSH_BUYERS)
        )
        plat.cpu["rush"] = plat_meter.per_request_ms(RUSH_BUYERS)
        plat.rush_problem = rs.check_holds(p, tier_id, RUSH_SEATS)
        other = [status for status in rush.errors if status != "409"]
        print(f"rush: {ok_count(rush)} holds, {rush.errors.get('409', 0)} sold out in "
              f"{rush.seconds:.2f} s, CPU ms/request {plat.cpu['rush']}"
              + (f" -- ERRORS: {rush.describe_errors()}" if other else ""))  # fmt: skip
        if other:
            show_logs(p)
    return plat, base


def form_starts(p: rs.Platform, tier_id: str, tag: str, count: int, c: int) -> common.LoadResult:
    """`count` distinct buyers post the tier's registration form, `c` at a time; 303 expected."""
    specs, url = rs.form_specs(tag, count, p.url), rs.register_url(p, tier_id)
    return common.run_load(url, specs, c, expected=303, allow_redirects=False)


def show_logs(p: rs.Platform) -> None:
    """What the two services said, to tell why starts failed (the platform logs warnings)."""
    for server in (p.platform, p.service):
        state = "running" if server.proc.poll() is None else f"exited ({server.proc.returncode})"
        print(f"--- {server.name} gunicorn ({state}), {server.log_path}:\n{server.log_tail()}")


def split(n: int, rounds: int) -> list[int]:
    """`n` in `rounds` near-equal parts, none empty."""
    parts = min(rounds, n)
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


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
    for c in levels:
        turns = zip(plat.rounds.get(c, []), base.rounds.get(c, []), strict=False)
        shown = ", ".join(f"{s:.0f}/{b:.0f} = {s / b:.2f}x" for s, b in turns if b)
        if shown:
            print(f"c={c} by round, starts/s / baseline req/s: {shown}")
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
            "throughput_by_round": run.rounds,
        }  # fmt: skip
    if plat.rush is not None:
        data["rush"] = {**plat.rush.summary(), "buyers": RUSH_BUYERS, "seats": RUSH_SEATS,
                        "holds": ok_count(plat.rush), "ledger_problem": plat.rush_problem}  # fmt: skip
    data["ledger_problems"] = plat.problems
    return passed, data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--requests",
        type=int,
        default=1200,
        help=f"measured starts per level (the baseline gets {BASELINE_SHARE}x)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="rounds per level; each runs a platform and a baseline chunk, the baseline first "
        "in odd rounds (so an even count is balanced)",
    )
    parser.add_argument("--concurrency", default=[8, 32], help="comma-separated levels (8,32)",
                        type=lambda s: [int(c) for c in s.split(",")])  # fmt: skip
    parser.add_argument("--warmup", type=int, default=100, help="warm-up requests per level")
    args = parser.parse_args()
    levels: list[int] = args.concurrency
    if args.requests < 1 or args.rounds < 1 or args.warmup < 0 or min(levels) < 1:
        parser.error("--requests, --rounds and each level must be >= 1, --warmup >= 0")
    common.interrupt_on_sigterm()
    started, load_before = time.strftime("%Y-%m-%dT%H:%M:%S%z"), os.getloadavg()
    try:
        plat, base = measure(levels, args.requests, args.warmup, args.rounds)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped and databases dropped", file=sys.stderr)
        return 130
    passed, data = report(plat, base, levels)
    meta = {
        "benchmark": "reserve",
        "started_at": started,
        "requests": args.requests,
        "baseline_requests": args.requests * BASELINE_SHARE,
        "rounds": args.rounds,
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
