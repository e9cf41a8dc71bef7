"""The whole service as real processes: `payment-service serve` (API, hosted pages and the
sandbox PSP under /sandbox) plus `payment-service worker`, on one database, for black-box tests.

    stack = Stack.start(database_url, tmp_path)
    created = stack.create_checkout(reservationId="res_1")
    ...                                 # a buyer's browser: tests/e2e/buyer.py
    stack.stop()

Nothing listens on the platform's origin (`stack.platform_url`): redirects to it are parsed,
never followed, and callbacks to it fail (and are retried) unless a test starts a receiver there.
Every wait is a bounded poll; failures carry the tail of both processes' logs (`stack.logs()`).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import requests
from sqlalchemy import select, update

from payment_service.callbacks.models import CallbackEvent
from payment_service.checkouts.models import Checkout
from payment_service.db import Database, utcnow
from payment_service.models import import_all_models
from tests.e2e.processes import BIN, Server, free_port, run_cli, service_env
from tests.factories import checkout_payload

T = TypeVar("T")

LOG_TAIL_LINES = 80
LOG_LINE_CHARS = 4000  # a traceback logged as JSON is one line: keep its start and its end


class StackError(AssertionError):
    """A step of the stack failed; the message carries the processes' logs."""


@dataclass
class Worker:
    """`payment-service worker` as a child process; it has no port, its log tells it started."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def launch(self) -> Worker:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(BIN / "payment-service"), "worker"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    def wait_started(self, timeout: float = 30) -> Worker:
        """Wait (bounded) until the worker logs `worker.started`."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited early ({self.process.returncode}):\n{self.log()}"
                )
            if "worker.started" in self.log():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker did not start within {timeout} s:\n{self.log()}")

    def start(self, timeout: float = 30) -> Worker:
        return self.launch().wait_started(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
            return None  # did not stop on SIGTERM: stop() reports it


@dataclass
class Stack:
    database_url: str
    env: dict[str, str]
    server: Server
    worker: Worker
    platform_url: str
    merchant_id: str
    api_key: str
    signing_secret: str
    http: requests.Session = field(default_factory=requests.Session)
    _log_marks: tuple[int, int] = (0, 0)
    _db: Database | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(cls, database_url: str, tmp_path: Path, **extra_env: str) -> Stack:
        """Migrate, create a merchant on a fresh platform origin, start serve and worker."""
        port = free_port()
        public_url = f"http://127.0.0.1:{port}"
        platform_url = f"http://127.0.0.1:{free_port()}"
        defaults = {
            "PAYMENT_PUBLIC_URL": public_url,  # the adapter reaches the sandbox through it
            "PAYMENT_SANDBOX": "1",
            "SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.db'}",
            "PAYMENT_ALLOW_PRIVATE_CALLBACKS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        env = service_env(database_url, **{**defaults, **extra_env})
        upgraded = run_cli(["db", "upgrade"], env)
        if upgraded.returncode != 0:
            raise RuntimeError(f"db upgrade failed:\n{upgraded.stdout}{upgraded.stderr}")
        created = run_cli(
            ["merchants", "create", "--name", "E2E Platform", "--callback-origin", platform_url,
             "--redirect-origin", platform_url, "--allow-http", "--json"],
            env,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"merchants create failed:\n{created.stdout}{created.stderr}")
        merchant = json.loads(created.stdout)

        server = Server(
            [str(BIN / "payment-service"), "serve", "--port", str(port),
             "--workers", "1", "--threads", "8"],
            env, port, tmp_path / "serve.log",
        )  # fmt: skip
        worker = Worker(env, tmp_path / "worker.log").launch()  # starts while the server does
        try:
            server.start(ready_path="/readyz")
            worker.wait_started()
        except BaseException:
            server.stop()
            worker.stop()
            raise
        return cls(
            database_url=database_url,
            env=env,
            server=server,
            worker=worker,
            platform_url=platform_url,
            merchant_id=merchant["merchantId"],
            api_key=merchant["apiKey"],
            signing_secret=merchant["signingSecret"],
        )

    def stop(self) -> None:
        """SIGTERM both processes; each must exit on its own, cleanly."""
        self.http.close()
        if self._db is not None:
            self._db.dispose()
        server_code = self.server.stop()
        worker_code = self.worker.stop()
        problems = []
        if server_code != 0:
            problems.append(f"server exited with {server_code} after SIGTERM")
        if worker_code != 0:
            problems.append(f"worker exited with {worker_code} after SIGTERM")
        if problems:
            raise StackError("; ".join(problems) + "\n" + self.logs(full=True))

    # -- diagnostics -----------------------------------------------------------------------

    def mark_logs(self) -> None:
        """Start `logs()` here (call before each test when the stack is shared)."""
        self._log_marks = (len(self.server.log()), len(self.worker.log()))

    def logs(self, *, full: bool = False) -> str:
        server, worker = self.server.log(), self.worker.log()
        if not full:
            server, worker = server[self._log_marks[0] :], worker[self._log_marks[1] :]

        def tail(text: str) -> str:
            lines = [
                line if len(line) <= LOG_LINE_CHARS else f"{line[:1000]} […] {line[-2500:]}"
                for line in text.splitlines()
            ]
            cut = len(lines) - LOG_TAIL_LINES
            return ("[…]\n" if cut > 0 else "") + "\n".join(lines[max(cut, 0) :])

        return f"\n--- server log ---\n{tail(server)}\n--- worker log ---\n{tail(worker)}\n"

    def fail(self, message: str) -> StackError:
        return StackError(f"{message}\n{self.logs()}")

    def check(self, condition: object, message: str) -> None:
        if not condition:
            raise self.fail(message)

    def poll(
        self, probe: Callable[[], T | None], what: str, timeout: float = 15, every: float = 0.2
    ) -> T:
        """Call probe until it returns something truthy; fail with the logs at the deadline."""
        deadline = time.monotonic() + timeout
        last: T | None = None
        while True:
            last = probe()
            if last:
                return last
            if time.monotonic() >= deadline:
                raise self.fail(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
            time.sleep(every)

    # -- the platform's side: the API --------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.api_key}", **kw.pop("headers", {})}
        kw.setdefault("timeout", 15)
        return self.http.request(method, self.url + path, headers=headers, **kw)

    def checkout_payload(self, **overrides: Any) -> dict[str, Any]:
        reservation = overrides.pop("reservationId", f"res_{uuid.uuid4().hex[:12]}")
        return checkout_payload(
            reservation,
            successUrl=f"{self.platform_url}/ok",
            cancelUrl=f"{self.platform_url}/cancel",
            callbackUrl=f"{self.platform_url}/hooks",
            **overrides,
        )

    def create_checkout(self, **overrides: Any) -> dict[str, Any]:
        """POST /v1/ticket-checkouts (a fresh reservation unless given); the 201 body."""
        response = self.api(
            "POST", "/v1/ticket-checkouts", json=self.checkout_payload(**overrides),
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )  # fmt: skip
        self.check(response.status_code == 201, f"create: {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        return body

    def get_checkout(self, checkout_id: str) -> dict[str, Any]:
        response = self.api("GET", f"/v1/ticket-checkouts/{checkout_id}")
        self.check(response.status_code == 200, f"read: {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        return body

    # -- the database, for what the API cannot do or does not show -------------------------

    @property
    def db(self) -> Database:
        """A connection pool of the test's own on the service's database (closed by stop())."""
        if self._db is None:
            import_all_models()
            self._db = Database(self.database_url, pool_size=2)
        return self._db

    def make_overdue(self, checkout_id: str, by: timedelta = timedelta(seconds=1)) -> None:
        """Move the checkout's deadline into the past, as if its time had run out: the UPDATE
        a test can do instead of waiting the minimum 60 s that expiresAt allows."""
        with self.db.transaction() as session:
            changed = session.execute(
                update(Checkout).where(Checkout.id == checkout_id).values(expires_at=utcnow() - by)
            )
        self.check(changed.rowcount == 1, f"no checkout {checkout_id} to make overdue")  # type: ignore[attr-defined]

    def stored_status(self, checkout_id: str) -> str | None:
        """The status column itself (the API shows an overdue open checkout as expired even
        before the worker has written it)."""
        with self.db.transaction() as session:
            status = session.scalar(select(Checkout.status).where(Checkout.id == checkout_id))
        return None if status is None else str(status)

    def event_types(self, checkout_id: str) -> list[str]:
        """The types of the callback events written for the checkout, in write order."""
        with self.db.transaction() as session:
            return list(
                session.scalars(
                    select(CallbackEvent.type)
                    .where(CallbackEvent.checkout_id == checkout_id)
                    .order_by(CallbackEvent.seq)
                )
            )

    def count_events(self, checkout_id: str, event_type: str) -> int:
        return self.event_types(checkout_id).count(event_type)
