"""What bench/reserve.py runs against: the payment service and the reference platform under
gunicorn, each on a throwaway PostgreSQL database, and the bare baseline; tiers and checks on
the platform's ledger; the registration form as a browser posts it."""

import json
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from urllib.parse import urlencode

import baseline_app
import common
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from platform_client.ledger import Reservation, ReservationStatus, Tier, ledger_engine

SEED_EVENT = "evt_seoul_marathon_2027"  # the event `python -m platform_client.demo init-db` seeds
SERVICE_ENV = {
    "PAYMENT_LOG_FORMAT": "json",
    "PAYMENT_LOG_LEVEL": "WARNING",
    "PAYMENT_ALLOW_PRIVATE_CALLBACKS": "1",  # the platform's callback URL is on 127.0.0.1
}
PLATFORM_APP = "platform_client.demo.app:create_app(init_db=False)"  # PLATFORM_* from the env


@dataclass(frozen=True)
class Baseline:
    url: str  # where to POST
    server: common.Server
    database: str


@dataclass(frozen=True)
class Platform:
    url: str
    service_url: str
    platform: common.Server
    service: common.Server
    databases: tuple[str, str]  # the service's, the platform's
    engine: Engine  # on the platform's database, for tiers and checks
    platform_env: dict[str, str]  # the platform's PLATFORM_* settings, for an in-process copy


def start_baseline(stack: ExitStack) -> Baseline:
    url = stack.enter_context(common.throwaway_database("bench_reserve_baseline"))
    baseline_app.create_schema(url)
    server = stack.enter_context(
        common.gunicorn_server("reserve-baseline", "baseline_app:app",
                               {"BENCH_DATABASE_URL": url}, chdir=str(common.BENCH_DIR))
    )  # fmt: skip
    print(f"baseline: gunicorn ready at {server.base_url} ({server.log_path})")
    return Baseline(f"{server.base_url}/insert", server, url)


def start_platform(stack: ExitStack) -> Platform:
    """Both services, each on its own database; the merchant's origin is the platform's."""
    service_db = stack.enter_context(common.throwaway_database("bench_reserve_service"))
    platform_db = stack.enter_context(common.throwaway_database("bench_reserve_platform"))
    sandbox_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-reserve-"))
    service_port, platform_port = common.free_port(), common.free_port()
    service_url, platform_url = (f"http://127.0.0.1:{p}" for p in (service_port, platform_port))
    env = {"PAYMENT_DATABASE_URL": service_db, "PAYMENT_PUBLIC_URL": service_url,
           "SANDBOX_DATABASE_URL": f"sqlite:///{sandbox_dir}/sandbox.db", **SERVICE_ENV}  # fmt: skip
    cli = common.VENV_BIN / "payment-service"
    common.run_command([cli, "db", "upgrade"], env)
    out = common.run_command(
        [cli, "merchants", "create", "--name", "Bench platform", "--callback-origin", platform_url,
         "--redirect-origin", platform_url, "--allow-http", "--json"], env,
    )  # fmt: skip
    try:
        merchant = json.loads(out)
        api_key, secret = merchant["apiKey"], merchant["signingSecret"]
    except (ValueError, KeyError, TypeError):
        raise RuntimeError("`merchants create --json` printed no apiKey/signingSecret") from None
    service = stack.enter_context(
        common.gunicorn_server("reserve-service", "payment_service.wsgi:app", env,
                               ready_path="/readyz", port=service_port)
    )  # fmt: skip
    platform_env = {
        "PLATFORM_ENV": "development", "PLATFORM_DATABASE_URL": platform_db,
        "PLATFORM_PAYMENT_SERVICE_URL": service_url, "PLATFORM_PUBLIC_URL": platform_url,
        "PLATFORM_API_KEY": api_key, "PLATFORM_SIGNING_SECRETS": secret,
        "PLATFORM_RESERVATION_TTL_SECONDS": "600",
    }  # fmt: skip
    demo = [common.VENV_BIN / "python", "-m", "platform_client.demo"]
    common.run_command([*demo, "init-db"], platform_env)  # tables and the seeded event, once
    platform = stack.enter_context(
        common.gunicorn_server("reserve-platform", PLATFORM_APP, platform_env, port=platform_port)
    )
    engine = ledger_engine(platform_db, pool_size=1)
    stack.callback(engine.dispose)
    print(f"service: gunicorn ready at {service.base_url} ({service.log_path})")
    print(f"platform: gunicorn ready at {platform.base_url} ({platform.log_path})")
    return Platform(
        platform.base_url, service.base_url, platform, service, (service_db, platform_db), engine,
        platform_env,
    )  # fmt: skip


def add_tier(p: Platform, capacity: int) -> str:
    """A fresh paid tier of the seeded event, so that each run counts its own seats."""
    tier_id = f"tier_bench_{uuid.uuid4().hex[:10]}"
    with Session(p.engine) as session, session.begin():
        session.add(Tier(id=tier_id, event_id=SEED_EVENT, name=f"Bench {tier_id[-4:]}",
                         price=30000, currency="KRW", capacity=capacity, question="T-shirt size"))  # fmt: skip
    return tier_id


def register_url(p: Platform, tier_id: str) -> str:
    return f"{p.url}/events/{SEED_EVENT}/tiers/{tier_id}/register"


def check_holds(p: Platform, tier_id: str, expected: int) -> str | None:
    """None if the ledger has exactly `expected` pending holds for the tier, each with one of
    the service's checkoutUrls, and `taken == expected`; else what it has."""
    prefix = f"{p.service_url}/checkout/"
    with Session(p.engine) as session:
        holds = session.scalar(
            select(func.count()).where(
                Reservation.tier_id == tier_id,
                Reservation.status == ReservationStatus.PENDING_PAYMENT,
                Reservation.checkout_url.startswith(prefix),
            )
        )
        taken = session.scalar(select(Tier.taken).where(Tier.id == tier_id))
    if holds == expected == taken:
        return None
    return (
        f"ledger: {holds} pending holds with a checkoutUrl, tier.taken {taken}; expected {expected}"
    )


def form_specs(tag: str, count: int, origin: str) -> list[common.RequestSpec]:
    """The registration form as a browser posts it (with its Origin), one distinct buyer (an
    e-mail the platform signs in) per request."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin}
    fields = {"name": "Bench Buyer", "answer": "M"}
    return [
        (headers, urlencode({**fields, "email": f"buyer-{tag}-{i}@example.com"}).encode())
        for i in range(count)
    ]


def json_specs(tag: str, count: int) -> list[common.RequestSpec]:
    """The same fields as JSON, for the baseline."""
    headers = {"Content-Type": "application/json"}
    body = '{"name": "Bench Buyer", "email": "buyer-<i>@example.com", "answer": "M"}'
    return [(headers, body.replace("<i>", f"{tag}-{i}").encode()) for i in range(count)]
