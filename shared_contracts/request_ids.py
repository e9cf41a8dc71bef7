"""Request ids on the wire (CONTRACT §4): what a request may carry in X-Request-ID, which every
answer carries back and every callback carries on."""

from __future__ import annotations

import re

HEADER = "X-Request-ID"
PATTERN = "[A-Za-z0-9._:-]{1,128}"
_REQUEST_ID = re.compile(PATTERN)


def is_request_id(value: str | None) -> bool:
    """Whether ``value`` is a request id the contract allows (all of it: a trailing newline
    is no part of one)."""
    return value is not None and _REQUEST_ID.fullmatch(value) is not None
