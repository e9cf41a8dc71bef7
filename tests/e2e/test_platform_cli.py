"""`python -m platform_client.demo` as a real process: configuration errors, init-db, sweep, and
the pages a buyer sees when the payment service cannot be reached.

No payment service runs here: the platform's PLATFORM_PAYMENT_SERVICE_URL is a closed port.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_client.ledger import Reservation, ReservationStatus, Tier, ledger_engine
from tests.e2e.buyer import Page
from tests.e2e.platform_stack import FREE_TIER, KRW_TIER, SEED_EVENT, platform_database
from tests.e2e.processes import Server, free_port

pytestmark = pytest.mark.e2e

API_KEY = "sk_test_never_printed_0123456789"
SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="


def demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYMENT_", "PLATFORM_"))}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def demo(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "platform_client.demo", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "no merchant credentials: var/dev-merchant.json does not exist"),
        ({"PLATFORM_API_KEY": API_KEY}, "PLATFORM_API_KEY is set but PLATFORM_SIGNING_SECRETS"),
        ({"PLATFORM_API_KEY": API_KEY, "PLATFORM_SIGNING_SECRETS": SECRET,
          "PLATFORM_RESERVATION_TTL_SECONDS": "30"}, "PLATFORM_RESERVATION_TTL_SECONDS must be"),
        ({"PLATFORM_API_KEY": API_KEY, "PLATFORM_SIGNING_SECRETS": SECRET,
          "PLATFORM_DATABASE_URL": "mysql://x/y"}, "PLATFORM_DATABASE_URL must be"),
        ({"PLATFORM_API_KEY": API_KEY, "PLATFORM_SIGNING_SECRETS": SECRET,
          "PLATFORM_ENV": "production"}, "PLATFORM_SECRET_KEY is required"),
    ],
    ids=["no-credentials", "key-without-secret", "short-ttl", "unknown-database", "production"],
)  # fmt: skip
def test_a_bad_configuration_is_one_line_and_exit_code_2(
    env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    done = demo(["serve", "--port", str(free_port())], demo_env(**env), tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("platform-demo: configuration error: ")
    assert expected in lines[0]
    assert API_KEY not in done.stderr + done.stdout and SECRET not in done.stderr + done.stdout


@pytest.fixture
def platform_db(database_url: str, tmp_path: Path) -> Iterator[str]:
    with platform_database(database_url, tmp_path) as url:
        yield url


def test_the_merchant_file_configures_init_db_and_sweep(platform_db: str, tmp_path: Path) -> None:
    (tmp_path / "merchant.json").write_text(
        f'{{"apiKey": "{API_KEY}", "signingSecret": "{SECRET}"}}'
    )
    env = demo_env(PLATFORM_DATABASE_URL=platform_db, PLATFORM_MERCHANT_FILE="merchant.json")
    first, again = demo(["init-db"], env, tmp_path), demo(["init-db"], env, tmp_path)
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert "seeded the demo event" in first.stderr
    assert "events already there" in again.stderr

    engine = ledger_engine(platform_db)
    try:
        with Session(engine) as session, session.begin():
            session.get_one(Tier, KRW_TIER).taken = 1
            session.add(
                Reservation(
                    id="res_swept", user_id="usr_1", event_id=SEED_EVENT, tier_id=KRW_TIER,
                    status=ReservationStatus.PENDING_PAYMENT, amount=30000, currency="KRW",
                    provider="sandbox", order_name="Full course", answers={},
                    expires_at=datetime.now(UTC) - timedelta(seconds=1),
                )
            )  # fmt: skip
        swept = demo(["sweep"], env, tmp_path)
        assert swept.returncode == 0, swept.stderr
        assert "released 1 holds" in swept.stdout
        with Session(engine) as session:
            status = session.scalar(select(Reservation.status).where(Reservation.id == "res_swept"))
            assert (status, session.get_one(Tier, KRW_TIER).taken) == ("expired", 0)
    finally:
        engine.dispose()


@pytest.fixture
def lonely_platform(platform_db: str, tmp_path: Path) -> Iterator[Server]:
    """The platform with nothing listening where the payment service should be."""
    port = free_port()
    env = demo_env(
        PLATFORM_DATABASE_URL=platform_db,
        PLATFORM_PAYMENT_SERVICE_URL=f"http://127.0.0.1:{free_port()}",
        PLATFORM_API_KEY=API_KEY,
        PLATFORM_SIGNING_SECRETS=SECRET,
        PLATFORM_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    server = Server(
        [sys.executable, "-m", "platform_client.demo", "serve", "--port", str(port)],
        env, port, tmp_path / "platform.log",
    )  # fmt: skip
    server.start()
    yield server
    assert server.stop() == 0, server.log()


def register(http: requests.Session, url: str, tier: str, **headers: str) -> requests.Response:
    form = {"name": "Kim", "email": "kim@example.com", "answer": "M"}
    return http.post(
        f"{url}/events/{SEED_EVENT}/tiers/{tier}/register",
        data=form, headers=headers, allow_redirects=False, timeout=30,
    )  # fmt: skip


def seats_left(http: requests.Session, url: str, tier: str) -> int:
    response = http.get(f"{url}/events/{SEED_EVENT}", timeout=10)
    card = Page.parse(response.url, response).find(data_tier=tier)
    assert card is not None, response.text
    return int(card.attrs["data-seats-left"])


def test_payment_service_down_shows_a_clear_page_and_holds_nothing(
    lonely_platform: Server,
) -> None:
    url = lonely_platform.url
    with requests.Session() as http:
        before = seats_left(http, url, KRW_TIER)
        refused = register(http, url, KRW_TIER)
        assert refused.status_code == 503, refused.text
        assert 'data-error="payment_unavailable"' in refused.text
        assert API_KEY not in refused.text and API_KEY not in lonely_platform.log()
        assert seats_left(http, url, KRW_TIER) == before  # the hold was released

        free = register(http, url, FREE_TIER)  # no payment service needed
        assert free.status_code == 303 and "/registrations/reg_" in free.headers["Location"]

        forged = register(http, url, FREE_TIER, Origin="http://evil.example")
        assert forged.status_code == 403
