"""The sign-in cookie: Flask's signed-cookie session, with its serializer made once per key set."""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class CachedSerializerSessionInterface(SecureCookieSessionInterface):
    """Flask builds a new URLSafeTimedSerializer for every request, once to read the cookie and
    once to write it; this keeps one per (secret key, fallbacks). Same cookie, same checks."""

    def __init__(self) -> None:
        self._serializers: dict[tuple[object, ...], URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        key = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        try:
            return self._serializers[key]  # None too, when there is no secret key
        except KeyError:  # a new key set (keys rotated in config); two threads may both build
            return self._serializers.setdefault(key, super().get_signing_serializer(app))
