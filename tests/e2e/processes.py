"""Run the project's commands as real processes: the CLI once, or a server until the test ends."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENT_")}
    env.update(
        PAYMENT_DATABASE_URL=database_url,
        PAYMENT_ENV="development",
        PAYMENT_LOG_FORMAT="json",
        PAYMENT_CALLBACK_RETRY_SCHEDULE="0,1,2",
    )
    env.update(extra)
    return env


def containers_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The service as deploy/gunicorn.conf.py runs it in the containers, one worker, with the
    sandbox on its own file, for tests that start gunicorn with that config."""
    return service_env(
        database_url, PAYMENT_SANDBOX="1", PAYMENT_ALLOW_PRIVATE_CALLBACKS="1",
        SANDBOX_DATABASE_URL=f"sqlite:///{tmp_path / 'sandbox.db'}",
        GUNICORN_WORKERS="1", PYTHONUNBUFFERED="1",
    )  # fmt: skip


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "payment-service"), *args],
        env=dict(env), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@dataclass
class Server:
    """A child process serving HTTP on 127.0.0.1:port; its output goes to a log file."""

    args: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/healthz", timeout: float = 30) -> Server:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process.wait()
                raise RuntimeError(f"{self.args[0]} exited early:\n{self.log()}")
            try:
                if requests.get(self.url + ready_path, timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.args[0]} did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)
