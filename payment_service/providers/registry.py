"""The registry: adapters by name, built once per app from the settings."""

from __future__ import annotations

from collections.abc import Iterable

from payment_service.providers.base import PaymentProvider


class ProviderRegistry:
    def __init__(self, providers: Iterable[PaymentProvider] = ()) -> None:
        self._providers = {provider.name: provider for provider in providers}

    def get(self, name: str) -> PaymentProvider:
        """The adapter called `name`; raises KeyError for an unknown one."""
        return self._providers[name]

    def names(self) -> frozenset[str]:
        return frozenset(self._providers)

    def __contains__(self, name: object) -> bool:
        return name in self._providers
