"""Who the buyer is: a sign-in by e-mail kept in the Flask session (a demo, not real auth).

A real platform has accounts; here the e-mail given on the registration form (or the sign-in
form) identifies the buyer, and the ledger's ``user_id`` is derived from it so that no e-mail
address appears in ids or logs.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flask import current_app, session

from shared_contracts.checkouts import CustomerSchema

MAX_NAME = 100
#: The schema the payment service loads ``customer.email`` with. The forms check an address
#: with its very field (format and length), so an address they take is never refused there:
#: the buyer could only have seen that refusal as "payments are unavailable".
_CUSTOMER = CustomerSchema()


@dataclass(frozen=True)
class Buyer:
    name: str
    email: str

    @property
    def user_id(self) -> str:
        return user_id_for(self.email, current_app.config["SECRET_KEY"])


def user_id_for(email: str, secret_key: str) -> str:
    """``usr_`` and an HMAC of the address under the app's secret key: the same buyer gets the
    same id while the key stays. A plain hash would let anyone who reads the logs (or the
    payment service's ``platformUserId``) confirm a guessed address by hashing it.

    A new secret key gives every buyer a new id, so their earlier registrations no longer show.
    """
    message = b"platform-demo user id:" + email.strip().casefold().encode()
    return "usr_" + hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:24]


def current_buyer() -> Buyer | None:
    name, email = session.get("name"), session.get("email")
    if isinstance(name, str) and isinstance(email, str) and email:
        return Buyer(name, email)
    return None


def sign_in(buyer: Buyer) -> None:
    session["name"], session["email"] = buyer.name, buyer.email


def sign_out() -> None:
    session.clear()


def buyer_errors(name: str, email: str) -> dict[str, str]:
    """Field -> message for a name and e-mail that cannot identify a buyer; empty when fine."""
    errors: dict[str, str] = {}
    if not name or len(name) > MAX_NAME:
        errors["name"] = f"Enter your name (at most {MAX_NAME} characters)."
    if "email" in _CUSTOMER.validate({"email": email}):
        errors["email"] = "Enter an e-mail address like kim@example.com."
    return errors


def mask_email(email: str) -> str:
    """``k***@example.com``: what logs may show of an address."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
