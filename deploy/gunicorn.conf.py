"""gunicorn settings for the containers: `gunicorn -c deploy/gunicorn.conf.py payment_service.wsgi:app`.

The settings themselves (gthread, timeouts, graceful shutdown, gunicorn's own lines logged as
JSON through structlog) come from `payment_service.server.gunicorn_options`, the ones
`payment-service serve` uses. This file adds only what depends on the container:

- the address: every interface, port 8000;
- workers from the CPUs the container may use (its cgroup CPU limit, else the CPUs it may run
  on): 2 x CPUs + 1, at most 12; `GUNICORN_WORKERS` and `GUNICORN_THREADS` override;
- gunicorn's worker heartbeat files in /dev/shm, so the root filesystem can be read-only;
- `GUNICORN_FORWARDED_ALLOW_IPS`: the proxies whose X-Forwarded-* headers are trusted (set `*`
  where only the load balancer can reach the pods).

Access logs: the app writes one `http.request` line per request from inside the request
(method, path, status, duration, requestId, merchantId, checkoutId), so gunicorn's own access
log stays off; a second, id-less line per request would only double the volume.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from payment_service.logging import configure_logging
from payment_service.server import gunicorn_options
from payment_service.settings import ConfigError, Settings

PORT = 8000
DEFAULT_THREADS = 4
MAX_WORKERS = 12
CGROUP = Path("/sys/fs/cgroup")


def available_cpus(cgroup: Path = CGROUP) -> int:
    """The CPUs this process may use: a container's CPU limit (cgroup v2, then v1) if it has
    one, else the CPUs the scheduler lets it run on."""
    quota_files = [
        (cgroup / "cpu.max", None),  # v2: "<quota> <period>" or "max <period>"
        (cgroup / "cpu" / "cpu.cfs_quota_us", cgroup / "cpu" / "cpu.cfs_period_us"),  # v1
    ]
    for quota_file, period_file in quota_files:
        try:
            if period_file is None:
                quota, period = quota_file.read_text().split()
            else:
                quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
            if quota not in ("max", "-1"):
                return max(1, math.ceil(int(quota) / int(period)))
        except (OSError, ValueError):
            continue
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        sys.exit(f"payment-service: configuration error: {name} must be a whole number >= 1")
    return int(raw)


def options_for(environ: Mapping[str, str], cpus: int) -> dict[str, Any]:
    """Every gunicorn setting this file makes, for this environment and CPU count."""
    options = gunicorn_options(
        bind=f"0.0.0.0:{PORT}",
        workers=_count(environ, "GUNICORN_WORKERS", min(2 * cpus + 1, MAX_WORKERS)),
        threads=_count(environ, "GUNICORN_THREADS", DEFAULT_THREADS),
    )
    # gunicorn's heartbeat files, in memory (gunicorn's advice for containers).
    shm = "/dev/shm"  # noqa: S108 (only gunicorn's own files: no name another user could guess)
    options["worker_tmp_dir"] = shm if os.path.isdir(shm) else None
    options["forwarded_allow_ips"] = (
        environ.get("GUNICORN_FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"
    ).strip()
    return options


# The master process logs through structlog too ("Starting gunicorn", worker boots and exits),
# so configure it here, before gunicorn writes its first line; a bad setting stops it at once.
try:
    _settings = Settings.from_env()
except ConfigError as exc:
    sys.stderr.write(f"payment-service: configuration error: {exc}\n")
    sys.exit(2)
configure_logging(_settings.log_format, _settings.log_level)

# gunicorn reads this module's globals whose names are its settings (bind, workers, …).
globals().update(options_for(os.environ, available_cpus()))
