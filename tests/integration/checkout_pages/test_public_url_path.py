"""PAYMENT_PUBLIC_URL with a path (a proxy's prefix): every page link and redirect keeps it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from payment_service import close_app, create_app
from tests.factories import public_resolver
from tests.integration.checkout_pages.conftest import create_checkout

PUBLIC_URL = "http://pay.test/gw"


@pytest.fixture
def prefixed(settings, db):
    app = create_app(replace(settings, public_url=PUBLIC_URL))
    policy = app.extensions["payment_policy"]
    app.extensions["payment_policy"] = replace(policy, resolve=public_resolver)
    client = app.test_client()
    yield client, create_checkout(client, db)
    close_app(app)


def test_the_pay_form_posts_under_the_public_url(prefixed):
    client, created = prefixed
    assert created.checkout_url.startswith(f"{PUBLIC_URL}/checkout/")
    html = client.get(created.path(PUBLIC_URL)).text
    assert f'action="{PUBLIC_URL}/checkout/{created.checkout_id}/pay"' in html


def test_the_try_again_link_and_the_closed_redirect_keep_the_path(prefixed, set_checkout):
    client, created = prefixed
    outage = client.post(f"/checkout/{created.checkout_id}/pay", data={"t": created.token})
    assert outage.status_code == 503  # the test client reaches no sandbox
    assert f'href="{created.checkout_url}"' in outage.text
    set_checkout(created.checkout_id, status="canceled")
    closed = client.post(f"/checkout/{created.checkout_id}/pay", data={"t": created.token})
    assert closed.status_code == 303 and closed.headers["Location"] == created.checkout_url
