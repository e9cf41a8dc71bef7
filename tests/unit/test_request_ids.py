"""The request-id rule of CONTRACT §4, which the service, the client and the receiver share."""

from __future__ import annotations

import pytest

from shared_contracts.request_ids import is_request_id


@pytest.mark.parametrize("value", ["req_1", "a", "r" * 128, "A-z.0:9_x"])
def test_ids_of_the_contracts_form_are_request_ids(value: str) -> None:
    assert is_request_id(value)


@pytest.mark.parametrize("value", [None, "", "r" * 129, "req 1", "req/1", "요청", "req_1\n"])
def test_anything_else_is_not(value: str | None) -> None:
    assert not is_request_id(value)
