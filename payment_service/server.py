"""Run the app under gunicorn from the CLI, with structlog handling gunicorn's own logs."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from payment_service.settings import Settings


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


def run_gunicorn(settings: Settings, *, bind: str, workers: int, threads: int) -> None:
    from payment_service.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    options = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 30,
        "graceful_timeout": 20,
        "accesslog": None,  # one http.request line per request comes from the app
        "logconfig_dict": {"version": 1, "disable_existing_loggers": False, "root": {}},
    }
    _Gunicorn(settings, options).run()
