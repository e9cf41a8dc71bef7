"""Fixtures for the client's tests: the scripted stand-in for the payment service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.platform_client.servers import Script, scripted_service


@pytest.fixture
def service() -> Iterator[Script]:
    with scripted_service() as script:
        yield script
