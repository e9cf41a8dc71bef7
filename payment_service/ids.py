"""Identifiers: prefixed, URL-safe and unguessable (144 random bits)."""

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(18)}"
