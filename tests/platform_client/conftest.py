"""Fixtures for the client's tests: the scripted stand-in for the payment service, and the
reference platform calling the real one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from platform_client.demo import close_app, create_app
from platform_client.demo.settings import DemoSettings
from tests.e2e.platform_stack import platform_database
from tests.factories import PLATFORM_ORIGIN, MerchantCredentials
from tests.platform_client.servers import Script, scripted_service, serving


class BrowserClient(FlaskClient):
    """A test client that sends the platform's Origin, as a browser does on a POST from its
    pages: the platform refuses a POST that does not show where it came from."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_ORIGIN"] = PLATFORM_ORIGIN


@pytest.fixture
def service() -> Iterator[Script]:
    with scripted_service() as script:
        yield script


@pytest.fixture
def demo(
    app: Flask, merchant: MerchantCredentials, database_url: str, tmp_path: Path
) -> Iterator[Flask]:
    """The reference platform on its own database (same backend), calling the real service."""
    with serving(app) as service_url, platform_database(database_url, tmp_path) as platform_db:
        settings = DemoSettings(
            database_url=platform_db,
            payment_service_url=service_url,
            api_key=merchant.api_key,
            signing_secrets=(merchant.signing_secret,),
            public_url=PLATFORM_ORIGIN,
        )
        platform = create_app(settings)
        platform.test_client_class = BrowserClient
        try:
            yield platform
        finally:
            close_app(platform)
