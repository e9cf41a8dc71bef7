"""The callbacks suite's platform stand-in and outbox builders, shared with operator tests."""

from tests.integration.callbacks.conftest import platform, receiver

__all__ = ["platform", "receiver"]
