"""Request guards that run before any view: body size, content type, JSON syntax, text."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from payment_service.errors import MalformedJson, NotFound, ValidationFailed
from payment_service.settings import MAX_BODY_BYTES

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def check_body() -> None:
    """Refuse oversized bodies from their Content-Length, before anything reads them (a chunked
    body has none: it is read up to the limit, and refused past it); require JSON on /v1
    bodies; refuse bodies that are not JSON with one clear error."""
    if request.method not in _BODY_METHODS or not request.path.startswith("/v1/"):
        return
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    # Transfer codings are case-insensitive (RFC 9112 §6.1), and gunicorn takes "Chunked" too.
    codings = request.headers.get("Transfer-Encoding", "").lower().split(",")
    chunked = "chunked" in (coding.strip() for coding in codings)
    if chunked and request.content_length is None:
        _read_unsized_body()
    if request.path.startswith("/v1/providers/"):
        return  # provider webhooks are verified on their raw bytes by their adapter
    if not (request.content_length or chunked):
        return
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    try:  # parsed once: request.get_json() answers from this cache from now on
        request.get_json(cache=True)
    except BadRequest:  # not UTF-8, or not JSON
        raise MalformedJson() from None
    except RecursionError:  # json.loads recurses once per nested array or object
        raise MalformedJson("The JSON nests too deeply.") from None


def _read_unsized_body() -> None:
    """Read (and cache) a body sent without Content-Length, chunked, refusing one over the
    limit. Werkzeug's stream stops silently at MAX_CONTENT_LENGTH, so the JSON of a larger
    body would look cut short; reading up to one byte past the limit tells the two apart."""
    request.max_content_length = MAX_BODY_BYTES + 1  # before anything opens request.stream
    if len(request.get_data(cache=True)) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()


_NUL = "\x00"
_UNSTORABLE_MESSAGE = "Must not contain NUL (U+0000) or unpaired surrogates (\\ud800)."


def _unstorable(value: object) -> bool:
    """Whether a JSON value holds text no database can take: NUL, which PostgreSQL text
    refuses, or an unpaired surrogate (a JSON escape like "\\ud800"), which is not UTF-8.
    Walked with a stack, not recursion: any nesting json.loads accepted can be checked."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _unstorable_text(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _unstorable_text(text: str) -> bool:
    if _NUL in text:
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _may_hold_unstorable(raw: bytes) -> bool:
    """False when a JSON document cannot decode to NUL or a lone surrogate: JSON strings can
    only spell them as a \\u escape, or (json.loads decodes bytes with surrogatepass) as
    UTF-8-encoded surrogates, which start with byte 0xED; a raw NUL is not JSON at all."""
    return b"\\u" in raw or b"\xed" in raw or b"\x00" in raw


def refuse_unstorable_text() -> None:
    """Such text is valid JSON (and NUL a valid URL), but a query or an insert with it fails:
    refuse it in /v1 paths, queries and bodies before any view runs, with the same answer on
    every database: 404 for a path, 422 validation_error naming the field otherwise."""
    if not request.path.startswith("/v1/"):
        return
    if _unstorable(request.path):
        raise NotFound()
    named: list[tuple[str, object]] = list(request.args.items(multi=True))
    if (
        request.is_json
        and not request.path.startswith("/v1/providers/")
        and _may_hold_unstorable(request.get_data(cache=True))
    ):
        body = request.get_json(silent=True)
        named += list(body.items()) if isinstance(body, dict) else [("_schema", body)]
    fields = {
        "_schema" if _unstorable(name) else name
        for name, value in named
        if _unstorable([name, value])
    }
    if fields:
        raise ValidationFailed(details={name: [_UNSTORABLE_MESSAGE] for name in sorted(fields)})


def init_app(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.before_request(check_body)
    app.before_request(refuse_unstorable_text)
