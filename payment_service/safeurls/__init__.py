"""Decide which merchant URLs we accept and which network addresses a callback may reach.

``urls``: strict parsing and origin allowlists; ``addresses``: which addresses are public;
``targets``: the check a callback host must pass before we connect to it.
"""

from payment_service.safeurls.addresses import UrlNotAllowed, is_public_address, parse_numeric_host
from payment_service.safeurls.targets import (
    CachedResolver,
    check_callback_target,
    check_callback_url,
)
from payment_service.safeurls.urls import MAX_URL_LENGTH, check_url, normalize_origin, url_host_port

__all__ = [
    "MAX_URL_LENGTH",
    "CachedResolver",
    "UrlNotAllowed",
    "check_callback_target",
    "check_callback_url",
    "check_url",
    "is_public_address",
    "normalize_origin",
    "parse_numeric_host",
    "url_host_port",
]
