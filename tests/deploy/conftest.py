"""Fixtures for the deployment tests: what the code reads and serves, computed once per run."""

from __future__ import annotations

import pytest

from tests.deploy import sources


@pytest.fixture(scope="session")
def payment_names(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    return sources.payment_env_names(tmp_path_factory.mktemp("names"))


@pytest.fixture(scope="session")
def platform_names(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    return sources.platform_env_names(tmp_path_factory.mktemp("platform-names"))


@pytest.fixture(scope="session")
def routes(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return sources.app_routes(tmp_path_factory.mktemp("routes"))
