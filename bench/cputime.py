"""CPU time a measured run costs each process group (Linux /proc): gunicorn workers, the
PostgreSQL backends of the run's databases, and this process (the load generator).

CPU per request hardly depends on what else runs on the machine, unlike req/s: on a shared box
it says where the time goes when throughput figures are noisy.

    meter = CpuMeter({"service": worker_pids(server)}, databases={"service db": url})
    result = meter.run(lambda: common.run_load(...))    # meter.used: {group: CPU seconds}
"""

import os
import resource
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import common
import psycopg

T = TypeVar("T")
TICK = os.sysconf("SC_CLK_TCK")
GENERATOR = "load generator"


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def worker_pids(server: common.Server) -> list[int]:
    """The gunicorn master's children: its workers (they do the requests' work)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == server.proc.pid:
                found.append(int(entry))
    return found


def backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL backends connected to a database now."""
    with psycopg.connect(f"{common.PG_SERVER}/postgres") as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", [database_url.rsplit("/", 1)[1]]
        ).fetchall()
    return [row[0] for row in rows]


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds used during `run` by each group of processes, by the backends of each of
    `databases` (label -> URL; including backends connected during the run), and by this
    process."""

    def __init__(self, groups: Mapping[str, Sequence[int]], databases: Mapping[str, str]) -> None:
        self.groups = groups
        self.databases = databases
        self.used: dict[str, float] = {}

    def run(self, work: Callable[[], T]) -> T:
        before = {pid: process_cpu(pid) for pids in self.groups.values() for pid in pids}
        backends = {
            label: {pid: process_cpu(pid) for pid in backend_pids(url)}
            for label, url in self.databases.items()
        }
        generator = self_cpu()
        result = work()
        # A process that exited during the run counts 0, not minus what it had used before.
        self.used = {
            name: sum(max(0.0, process_cpu(pid) - before[pid]) for pid in pids)
            for name, pids in self.groups.items()
        }
        for label, url in self.databases.items():
            self.used[label] = sum(
                process_cpu(pid) - backends[label].get(pid, 0.0) for pid in backend_pids(url)
            )
        self.used[GENERATOR] = self_cpu() - generator
        return result

    def per_request_ms(self, requests: int) -> dict[str, float]:
        """CPU milliseconds per request by group, and their total, of the last run."""
        return per_request_ms(self.used, requests)


def per_request_ms(used: Mapping[str, float], requests: int) -> dict[str, float]:
    """CPU milliseconds per request by group, and their total, of `used` CPU seconds."""
    shares = {name: round(s / requests * 1000, 2) for name, s in used.items()}
    return {**shares, "total": round(sum(used.values()) / requests * 1000, 2)}
