"""Request guards that run before any view: body size, content type and JSON syntax."""

from __future__ import annotations

import json

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from payment_service.errors import MalformedJson
from payment_service.settings import MAX_BODY_BYTES

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def check_body() -> None:
    """Refuse oversized bodies from their Content-Length, before anything reads them; require
    JSON on /v1 bodies; refuse bodies that are not JSON with one clear error."""
    if request.method not in _BODY_METHODS or not request.path.startswith("/v1/"):
        return
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    if request.path.startswith("/v1/providers/"):
        return  # provider webhooks are verified on their raw bytes by their adapter
    has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding") == "chunked"
    if not has_body:
        return
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    raw = request.get_data(cache=True)  # bounded by MAX_CONTENT_LENGTH for chunked bodies
    try:
        json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedJson() from None


def init_app(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.before_request(check_body)
