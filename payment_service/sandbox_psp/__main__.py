"""Run the sandbox PSP alone: ``python -m payment_service.sandbox_psp --port 8010``."""

from __future__ import annotations

import argparse
import logging

from werkzeug.serving import run_simple

from payment_service.sandbox_psp import close_sandbox_app, create_sandbox_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m payment_service.sandbox_psp",
        description="A stand-in payment provider (test mode, no real money).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    app = create_sandbox_app()
    try:
        run_simple(args.host, args.port, app, threaded=True)
    finally:
        close_sandbox_app(app)


if __name__ == "__main__":
    main()
