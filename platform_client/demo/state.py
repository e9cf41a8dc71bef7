"""Demo: what the views need (settings, engine, client, ledger), kept in app.extensions."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import Engine

from platform_client.client import PaymentServiceClient
from platform_client.demo.settings import DemoSettings
from platform_client.demo.sweeper import Sweeper
from platform_client.ledger import Ledger

EXTENSION = "platform_demo"


@dataclass(frozen=True)
class Demo:
    settings: DemoSettings
    engine: Engine
    client: PaymentServiceClient
    ledger: Ledger
    sweeper: Sweeper | None


def demo_of(app: Flask) -> Demo:
    found = app.extensions[EXTENSION]
    assert isinstance(found, Demo)
    return found


def current_demo() -> Demo:
    """The running app's Demo (inside a request)."""
    return demo_of(current_app)
