"""Benchmark baseline: bare Flask, one psycopg INSERT + COMMIT per request, no framework extras."""

import os
import threading

import psycopg
from flask import Flask, jsonify, request
from psycopg.types.json import Jsonb

SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_rows (
    id bigserial PRIMARY KEY,
    body jsonb,
    created_at timestamptz DEFAULT now()
)
"""

app = Flask(__name__)
_local = threading.local()  # one connection per gunicorn thread, opened on first use


def create_schema(database_url: str) -> None:
    """Create `bench_rows`; the benchmark calls this once, before gunicorn starts."""
    with psycopg.connect(database_url) as conn:
        conn.execute(SCHEMA)


def _connection() -> psycopg.Connection:
    conn: psycopg.Connection | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(os.environ["BENCH_DATABASE_URL"])
    return conn


@app.post("/insert")
def insert() -> tuple[object, int]:
    body = request.get_json()
    conn = _connection()
    try:
        row = conn.execute(
            "INSERT INTO bench_rows (body) VALUES (%s) RETURNING id", [Jsonb(body)]
        ).fetchone()
        conn.commit()
    except psycopg.Error:
        conn.close()  # the next request on this thread reconnects
        raise
    assert row is not None
    return jsonify(id=row[0], status="inserted"), 201


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
