"""WSGI entry for an external gunicorn: `gunicorn payment_service.wsgi:app`."""

import sys

from payment_service import create_app
from payment_service.logging import configure_logging
from payment_service.settings import ConfigError, Settings

try:
    _settings = Settings.from_env()
except ConfigError as exc:
    sys.stderr.write(f"payment-service: configuration error: {exc}\n")
    sys.exit(2)
configure_logging(_settings.log_format, _settings.log_level)
app = create_app(_settings)
