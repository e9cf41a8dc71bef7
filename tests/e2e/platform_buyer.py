"""PlatformBuyer: a buyer without JavaScript on the reference platform's pages (and, through
Buyer, on the hosted checkout and the sandbox), known to the platform by its session cookie."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from tests.e2e.buyer import Buyer, Page
from tests.e2e.platform_stack import SEED_EVENT, PlatformStack
from tests.e2e.stack import StackError

_RESERVATION_PATH = re.compile(r"/reservations/(res_[A-Za-z0-9_-]+)")


class PlatformBuyer(Buyer):
    """A buyer on the reference platform's pages (and, through Buyer, the hosted checkout);
    the platform's session cookie identifies them."""

    def __init__(self, platform: PlatformStack, email: str | None = None) -> None:
        super().__init__(platform.stack)
        self.platform = platform
        self.email = email or f"runner-{uuid.uuid4().hex[:8]}@example.com"
        self.name = "Kim Runner"

    def _fail(self, message: str, response: requests.Response | None = None) -> StackError:
        body = f"\nbody: {response.text[:2000]}" if response is not None else ""
        trail = "\n".join(self.trail)
        return self.platform.fail(f"{message}{body}\nbuyer's trail:\n{trail}")

    def event_page(self, event_id: str = SEED_EVENT) -> Page:
        return self.open(f"{self.platform.url}/events/{event_id}")

    def seats_left(self, tier_id: str) -> int:
        card = self.event_page().find(data_tier=tier_id)
        if card is None:
            raise self._fail(f"no tier {tier_id} on the event page")
        return int(card.attrs["data-seats-left"])

    def post_registration(self, tier_id: str, answer: str = "M") -> requests.Response:
        """Open the event page, follow the tier's register link, fill the form and post it.
        A tier without a link (sold out) gets the form by its URL, as a buyer who opened the
        form before the last place went would have it."""
        event = self.event_page()
        link = event.find(data_action="register", data_tier_id=tier_id)
        href = link.attrs["href"] if link else f"/events/{SEED_EVENT}/tiers/{tier_id}/register"
        form_page = self.open(urljoin(event.url, href))
        button = form_page.find(data_action="register")
        if button is None:
            raise self._fail(f"no register button:\n{form_page.html[:3000]}")
        form = form_page.form_of(button)
        data = {**form.inputs, "name": self.name, "email": self.email, "answer": answer}
        return self._request("POST", urljoin(form_page.url, form.action), data=data)

    def start_registration(self, tier_id: str, answer: str = "M") -> str:
        """Register for a tier; the 303's Location (checkoutUrl, or the registration page)."""
        response = self.post_registration(tier_id, answer)
        if response.status_code != 303:
            raise self._fail(f"registering for {tier_id}: {response.status_code}", response)
        return urljoin(response.url, response.headers["Location"])

    def wait_for_status(self, url: str, status: str, timeout: float = 20) -> Page:
        """Reload a reservation page (as its meta refresh does) until data-status is ``status``."""
        seen: list[str] = []

        def probe() -> Page | None:
            page = self.open(url)
            card = page.find(data_reservation=reservation_id_of(url))
            seen.append(card.attrs.get("data-status", "?") if card else "no card")
            return page if seen[-1] == status else None

        try:
            return self.stack.poll(probe, f"{url} to show {status}", timeout=timeout, every=0.3)
        except StackError:
            raise self._fail(f"{url} never showed {status}; saw {sorted(set(seen))}") from None

    def registrations(self) -> list[dict[str, Any]]:
        page = self.open(f"{self.platform.url}/my/registrations")
        return [
            {name.removeprefix("data-"): value for name, value in element.attrs.items()}
            for element in page.elements
            if "data-registration" in element.attrs
        ]


def checkout_id_of(checkout_url: str) -> str:
    """The id in a checkoutUrl (`…/checkout/chk_…?t=…`)."""
    return urlsplit(checkout_url).path.rstrip("/").rsplit("/", 1)[-1]


def reservation_id_of(url: str) -> str:
    found = _RESERVATION_PATH.search(urlsplit(url).path)
    assert found, f"not a reservation page: {url}"
    return found.group(1)
