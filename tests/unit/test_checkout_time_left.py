"""How the checkout page words the time a ticket is held and its deadline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payment_service.checkouts.page_texts import deadline, time_left


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 more minutes"),
        (1, "1 more minute"),
        (14 * 60 + 1, "15 more minutes"),
        (60 * 60, "60 more minutes"),
        (60 * 60 + 1, "1 h 1 min more"),
        (2 * 3600, "2 h more"),
        (23 * 3600 + 59 * 60, "23 h 59 min more"),
    ],
)
def test_time_left(seconds: int, text: str) -> None:
    assert time_left(seconds) == text


def test_the_deadline_has_a_date_only_when_it_is_not_today() -> None:
    now = datetime(2026, 11, 22, 16, 28, tzinfo=UTC)
    assert deadline(datetime(2026, 11, 22, 23, 59, tzinfo=UTC), now) == "23:59 UTC"
    assert deadline(datetime(2026, 11, 23, 16, 27, tzinfo=UTC), now) == "23 Nov 16:27 UTC"
    assert deadline(datetime(2027, 1, 3, 9, 5, tzinfo=UTC), now) == "3 Jan 09:05 UTC"
