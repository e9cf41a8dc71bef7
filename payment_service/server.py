"""Run the app under gunicorn from the CLI, with structlog handling gunicorn's own logs."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from payment_service.settings import Settings


class StructlogGunicornLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's loggers hand their records to the root handler of configure_logging, so its
    lines are JSON like ours and written once (gunicorn would add plain-text handlers)."""

    def setup(self, cfg: Any) -> None:
        for log in (self.error_log, self.access_log):
            log.handlers = []
            log.propagate = True
            log.setLevel(logging.INFO)


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from payment_service import create_app

        return create_app(self._settings)


def gunicorn_options(*, bind: str, workers: int, threads: int) -> dict[str, Any]:
    """Our gunicorn settings, in one place: `payment-service serve` and deploy/gunicorn.conf.py
    (the containers' server) both take them from here."""
    return {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 30,
        # On SIGTERM gunicorn stops accepting and lets requests in flight finish for this long.
        "graceful_timeout": 20,
        "accesslog": None,  # one http.request line per request comes from the app
        "logger_class": StructlogGunicornLogger,
        "control_socket_disable": True,  # several servers share a machine in tests and benches
    }


def run_gunicorn(settings: Settings, *, bind: str, workers: int, threads: int) -> None:
    from payment_service.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    options = gunicorn_options(bind=bind, workers=workers, threads=threads)
    _Gunicorn(settings, options).run()
