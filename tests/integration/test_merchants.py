"""Merchants: hashed API keys, constant-time authentication, secrets and their rotation."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from payment_service.db import utcnow
from payment_service.merchants.models import ApiKey, Merchant
from payment_service.merchants.services import (
    authenticate,
    create_merchant,
    hash_api_key,
    rotate_secret,
)
from shared_contracts.signing import sign, verify, webhook_headers
from tests.factories import make_merchant


def test_api_key_is_shown_once_and_stored_only_as_a_hash(db):
    creds = make_merchant(db)
    assert creds.api_key.startswith("sk_") and len(creds.api_key) >= 3 + 43  # 32 random bytes
    with db.transaction() as session:
        stored = session.scalars(select(ApiKey)).one()
        assert stored.key_hash == hash_api_key(creds.api_key)
        assert creds.api_key not in (stored.key_hash, stored.prefix)


def test_authenticate_finds_the_owner_and_nothing_else(db):
    first, second = make_merchant(db, name="A"), make_merchant(db, name="B")
    with db.transaction() as session:
        assert authenticate(session, first.api_key).id == first.merchant_id
        assert authenticate(session, second.api_key).id == second.merchant_id
        assert authenticate(session, first.api_key + "x") is None
        assert authenticate(session, "sk_" + "A" * 43) is None
        assert authenticate(session, "") is None


def test_signing_secret_is_whsec_base64_of_32_bytes(db):
    import base64

    creds = make_merchant(db)
    assert creds.signing_secret.startswith("whsec_")
    assert len(base64.b64decode(creds.signing_secret.removeprefix("whsec_"))) == 32


def test_origins_are_normalised(db):
    created = create_merchant(
        db, name="N", callback_origins=["HTTPS://Hooks.Example:443/"],
        redirect_origins=["https://www.example:8443", "https://www.example:8443/"],
    )  # fmt: skip
    with db.transaction() as session:
        merchant = session.get(Merchant, created.merchant_id)
        assert merchant.callback_origins == ["https://hooks.example"]
        assert merchant.redirect_origins == ["https://www.example:8443"]


@pytest.mark.parametrize("origin", ["https://x.example/path", "ftp://x.example", "x.example"])
def test_bad_origins_are_refused(db, origin):
    with pytest.raises(ValueError):
        create_merchant(
            db, name="N", callback_origins=[origin], redirect_origins=["https://ok.example"]
        )


def test_http_origins_need_allow_http(db):
    with pytest.raises(ValueError, match="allow-http"):
        create_merchant(
            db,
            name="N",
            callback_origins=["http://x.example"],
            redirect_origins=["https://x.example"],
        )
    create_merchant(db, name="N", callback_origins=["http://x.example"],
                    redirect_origins=["http://x.example"], allow_http=True)  # fmt: skip


def test_rotation_keeps_two_secrets_until_the_grace_period_ends(db):
    creds = make_merchant(db)
    new_secret, active = rotate_secret(db, creds.merchant_id, grace=timedelta(hours=24))
    assert [secret for secret, _ in active] == [new_secret, creds.signing_secret]
    assert active[0][1] is None and active[1][1] > utcnow() + timedelta(hours=23)

    with db.transaction() as session:
        merchant = session.get(Merchant, creds.merchant_id)
        secrets_now = merchant.active_secrets()
        secrets_later = merchant.active_secrets(utcnow() + timedelta(hours=25))
    assert secrets_now == [new_secret, creds.signing_secret]
    assert secrets_later == [new_secret]

    # A callback signed with both verifies for a receiver holding either one.
    headers = webhook_headers(secrets_now, "evt_1", b"{}", timestamp=1_700_000_000)
    for held in (new_secret, creds.signing_secret):
        verify(held, headers, b"{}", now=1_700_000_000)
    assert sign(new_secret, "evt_1", 1_700_000_000, b"{}") in headers["webhook-signature"]


def test_rotate_unknown_merchant(db):
    with pytest.raises(LookupError):
        rotate_secret(db, "mer_nope")
