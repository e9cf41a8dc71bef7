"""The reference event platform: a Flask app that embeds the ledger and the platform client.

    python -m platform_client.demo serve --port 8001

It shows the safe path end to end: hold a place, send the buyer to the checkout, and register
only when a verified callback says the payment was made. See README.md's walk-through.
"""

from platform_client.demo.app import close_app, create_app

__all__ = ["close_app", "create_app"]
