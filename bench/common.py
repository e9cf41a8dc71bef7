"""Shared benchmark helpers: throwaway databases, gunicorn processes, an aiohttp load loop."""

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = ROOT / ".venv" / "bin"
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
GUNICORN_SETTINGS = ["-w", "2", "-k", "gthread", "--threads", "4", "--no-control-socket"]
RequestSpec = tuple[dict[str, str], bytes]  # one request of a load run: (headers, body)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (and SIGINT, even if inherited as ignored) raise KeyboardInterrupt, so that
    `with` blocks clean up; asyncio.run then cancels its tasks cleanly too."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))


def subprocess_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The current environment without inherited PAYMENT_* settings, plus `extra`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PAYMENT_")} | dict(extra)


def run_command(args: Sequence[str | Path], env: Mapping[str, str]) -> str:
    """Run a command to completion and return its stdout; on failure raise with its stderr."""
    cmd = [str(a) for a in args]
    done = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(env), capture_output=True, text=True)
    if done.returncode != 0:
        output = done.stderr.strip() or done.stdout.strip()
        raise RuntimeError(f"`{' '.join(cmd)}` exited with {done.returncode}:\n{output}")
    return done.stdout


def admin_sql(statement: sql.Composable | str) -> None:
    """Run one statement against the server's `postgres` database, outside a transaction."""
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(statement)


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """Create an empty database, yield its URL, and drop it afterwards whatever happened."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin_sql(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        admin_sql(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def checkpoint() -> None:
    """Flush dirty buffers so that a measured run does not pay for an earlier run's writes."""
    admin_sql("CHECKPOINT")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gunicorn_server(
    name: str,
    app: str,
    env: Mapping[str, str],
    ready_path: str = "/healthz",
    chdir: str = ".",
    port: int | None = None,
) -> Iterator[Server]:
    """Run `gunicorn GUNICORN_SETTINGS app` in its own session, yield it once `ready_path`
    answers 200, and stop it afterwards whatever happened (Ctrl-C reaches only us).
    `port`: where to listen (when another process must know the URL first); default a free one."""
    port = free_port() if port is None else port
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / f"{name}.gunicorn.log"
    args = [VENV_BIN / "gunicorn", *GUNICORN_SETTINGS, "-b", f"127.0.0.1:{port}", "--chdir", chdir]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*args, app],
            cwd=ROOT,
            env=subprocess_env(env),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    server = Server(name, proc, port, log_path)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name}: gunicorn exited ({proc.returncode}):\n{server.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(server.base_url + ready_path, timeout=2) as resp,
            ):
                if resp.status == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{name}: {ready_path} not ready after 30 s:\n{server.log_tail()}")
        yield server
    finally:
        stop_gunicorn(server)


def stop_gunicorn(server: Server, grace: float = 10.0) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left (orphaned workers too)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait()


@dataclass
class LoadResult:
    concurrency: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # unexpected status (or exception)
    error_samples: dict[str, str] = field(default_factory=dict)  # first body per status

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile over all requests' latencies, in ms."""
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan

    @classmethod
    def combine(cls, parts: Sequence["LoadResult"]) -> "LoadResult":
        """One result of several runs at the same concurrency: their requests and their time."""
        whole = cls(parts[0].concurrency)
        for part in parts:
            whole.seconds += part.seconds
            whole.latencies_ms += part.latencies_ms
            whole.errors.update(part.errors)
            for status, body in part.error_samples.items():
                whole.error_samples.setdefault(status, body)
        return whole

    def describe_errors(self) -> str:
        counts = ", ".join(f"{status} x{n}" for status, n in self.errors.most_common())
        samples = "".join(f"\n    {s}: {body}" for s, body in self.error_samples.items())
        total = sum(self.errors.values())
        return f"{total}/{len(self.latencies_ms)} unexpected answers ({counts}){samples}"

    def summary(self) -> dict[str, Any]:
        figures = {f"p{p}_ms": round(self.percentile(p), 2) for p in (50, 95, 99)}
        return {
            "requests": len(self.latencies_ms),
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "throughput": round(self.throughput, 1),
            **figures,
            "errors": sum(self.errors.values()),
            "errors_by_status": dict(self.errors),
            "error_samples": self.error_samples,
        }


def run_load(
    url: str,
    specs: Sequence[RequestSpec],
    concurrency: int,
    expected: int = 201,
    method="POST",
    allow_redirects: bool = True,
) -> LoadResult:
    """Send every spec with `concurrency` requests in flight, timing each with perf_counter.
    With `allow_redirects=False` a 3xx is the answer (its Location is not followed)."""
    return asyncio.run(_load(url, specs, concurrency, expected, method, allow_redirects))


async def _load(
    url: str,
    specs: Sequence[RequestSpec],
    concurrency: int,
    expected: int,
    method: str,
    allow_redirects: bool = True,
) -> LoadResult:
    result = LoadResult(concurrency)
    pending = iter(specs)  # shared by all workers: asyncio runs one of them at a time
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    # No cookie jar: each request stands for its own client (a buyer's own browser), so no
    # request carries a cookie some earlier answer set for someone else.
    jar = aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=jar
    ) as session:

        async def worker() -> None:
            for headers, body in pending:
                start = time.perf_counter()
                try:
                    async with session.request(
                        method, url, data=body, headers=headers, allow_redirects=allow_redirects
                    ) as resp:
                        status, payload = str(resp.status), await resp.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, payload = type(exc).__name__, str(exc).encode()
                result.latencies_ms.append((time.perf_counter() - start) * 1000)
                if status != str(expected):
                    result.errors[status] += 1
                    result.error_samples.setdefault(status, payload[:300].decode(errors="replace"))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(row))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    print("\n".join(lines))


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
