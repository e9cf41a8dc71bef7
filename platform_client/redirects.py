"""verify_redirect: the signed ``checkoutId``/``status``/``sig`` on a buyer's return URL (§7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from platform_client.errors import InvalidSignature
from shared_contracts import signing


class RedirectStatus(StrEnum):
    PAID = "paid"
    PROCESSING = "processing"  # the service could not confirm yet; the callback will tell
    CANCELED = "canceled"
    EXPIRED = "expired"
    FAILED = "failed"


@dataclass(frozen=True)
class RedirectResult:
    checkout_id: str
    status: RedirectStatus


def verify_redirect(query: Mapping[str, str], secrets: str | Sequence[str]) -> RedirectResult:
    """Check the ``sig`` of a return URL's query and give its checkout id and status.

    A redirect is a hint for the page the buyer sees ("payment processing", "canceled"), never
    a reason to confirm a registration: only a verified callback does that, because a buyer
    can replay or skip a redirect. Raises InvalidSignature for a missing or forged ``sig`` and
    for a status outside the contract's list.
    """
    checkout_id = query.get("checkoutId")
    status = query.get("status")
    sig = query.get("sig")
    if not (checkout_id and status and sig):
        raise InvalidSignature("checkoutId, status and sig are required")
    if not signing.verify_redirect(secrets, checkout_id, status, sig):
        raise InvalidSignature("the redirect's sig does not match")
    try:
        return RedirectResult(checkout_id, RedirectStatus(status))
    except ValueError:
        raise InvalidSignature(f"unknown redirect status {status!r}") from None
