"""The ledger's exceptions: each has a stable ``code`` a platform can branch on or show."""

from __future__ import annotations

from platform_client.errors import PaymentServiceError


class LedgerError(Exception):
    """A registration cannot go ahead; ``code`` is stable, the message is for people."""

    code: str = "ledger_error"

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.code}: {message}")
        self.message = message


class UnknownTier(LedgerError):
    """No such tier for that event."""

    code = "unknown_tier"


class SaleClosed(LedgerError):
    """The tier is not on sale now (before ``valid_from`` or from ``valid_until`` on)."""

    code = "sale_closed"


class SoldOut(LedgerError):
    """Every seat of the tier is held or registered."""

    code = "sold_out"


class AlreadyRegistered(LedgerError):
    """The user already has a registration for the event."""

    code = "already_registered"


class TierHasLiveHolds(LedgerError):
    """The tier still has holds waiting for payment; delete it after they settle."""

    code = "tier_has_live_holds"


class TierHasRegistrations(LedgerError):
    """The tier has registrations; deleting it would orphan them."""

    code = "tier_has_registrations"


class CheckoutUnavailable(LedgerError):
    """The payment service did not create the checkout, or created it for a hold released
    meanwhile (``error.code == "hold_released"``; that checkout is canceled); ``error`` is the
    client's exception. The submit that made the hold has released it, so the buyer may simply
    try again (a repeated submit leaves the hold to the submit that made it, or to the sweeper)."""

    code = "checkout_unavailable"

    def __init__(self, message: str, error: PaymentServiceError) -> None:
        super().__init__(message)
        self.error = error
