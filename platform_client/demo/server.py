"""Run the reference platform under gunicorn in-process, as `payment-service serve` does."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from platform_client.demo.settings import DemoSettings


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: DemoSettings, sweep_every: float, options: dict[str, Any]) -> None:
        self._settings = settings
        self._sweep_every = sweep_every
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Called in each worker after the fork: engine, client and sweeper belong to it.
        from platform_client.demo.app import create_app

        return create_app(self._settings, init_db=False, sweep_every=self._sweep_every)


def run_gunicorn(
    settings: DemoSettings, *, bind: str, workers: int, threads: int, sweep_every: float
) -> None:
    options = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,
        "control_socket_disable": True,  # several servers share a machine in tests and benches
    }
    _Gunicorn(settings, sweep_every, options).run()
