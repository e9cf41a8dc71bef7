"""The reference platform's user ids: stable per e-mail address under one secret key, and no
plain hash of the address that anyone reading the logs could recompute from a guess."""

from __future__ import annotations

import hashlib

from platform_client.demo.identity import user_id_for

KEY = "platform-secret-key-" + "k" * 32


def test_one_address_has_one_id_under_one_key() -> None:
    first = user_id_for("kim@example.com", KEY)
    assert first == user_id_for(" Kim@Example.COM ", KEY)
    assert first.startswith("usr_") and len(first) == 4 + 24
    assert first != user_id_for("lee@example.com", KEY)


def test_the_id_cannot_be_recomputed_from_the_address_alone() -> None:
    guessed = "usr_" + hashlib.sha256(b"kim@example.com").hexdigest()[:24]
    assert user_id_for("kim@example.com", KEY) != guessed
    assert user_id_for("kim@example.com", KEY) != user_id_for("kim@example.com", KEY + "2")
