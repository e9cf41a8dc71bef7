"""The buyer's side of the black-box tests: a browser without JavaScript that reads the
hosted pages, presses their buttons and follows redirects by hand.

    buyer = Buyer(stack)
    page = buyer.open(created["checkoutUrl"])
    redirect = buyer.pay(created["checkoutUrl"], "succeeded")
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from tests.e2e.stack import Stack, StackError


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    form: int | None = None  # index into Page.forms of the enclosing form


@dataclass
class Form:
    action: str
    method: str
    inputs: dict[str, str]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.forms: list[Form] = []
        self._form: int | None = None
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(
                Form(values.get("action", ""), values.get("method", "get").lower(), {})
            )
            self._form = len(self.forms) - 1
        element = Element(tag, values, form=self._form)
        self.elements.append(element)
        if tag == "input" and self._form is not None and "name" in values:
            self.forms[self._form].inputs[values["name"]] = values.get("value", "")
        if tag not in ("input", "meta", "br", "img", "link", "hr"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


@dataclass
class Page:
    url: str
    status: int
    html: str
    elements: list[Element]
    forms: list[Form]

    @classmethod
    def parse(cls, url: str, response: requests.Response) -> Page:
        parser = _Parser()
        parser.feed(response.text)
        parser.close()
        return cls(url, response.status_code, response.text, parser.elements, parser.forms)

    def find(self, **attrs: str) -> Element | None:
        """The first element whose attributes include these (data_action= means data-action)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        for element in self.elements:
            if all(element.attrs.get(name) == value for name, value in wanted.items()):
                return element
        return None

    def text(self, **attrs: str) -> str | None:
        element = self.find(**attrs)
        return " ".join(element.text.split()) if element else None

    def form_of(self, element: Element) -> Form:
        assert element.form is not None, f"{element} is not inside a form"
        return self.forms[element.form]


@dataclass(frozen=True)
class Redirect:
    """A Location the service answered with, split for assertions."""

    location: str

    @property
    def base(self) -> str:
        parts = urlsplit(self.location)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    @property
    def query(self) -> dict[str, str]:
        return {
            name: values[-1] for name, values in parse_qs(urlsplit(self.location).query).items()
        }


class Buyer:
    """Follows the hosted pages by hand (no automatic redirects), like a browser would."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = requests.Session()
        self.trail: list[str] = []

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, url: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 20)
        response = self.http.request(method, url, allow_redirects=False, **kw)
        self.trail.append(
            f"{method} {url} -> {response.status_code} {response.headers.get('Location', '')}"
        )
        return response

    def _fail(self, message: str, response: requests.Response | None = None) -> StackError:
        body = f"\nbody: {response.text[:2000]}" if response is not None else ""
        trail = "\n".join(self.trail)
        return self.stack.fail(f"{message}{body}\nbuyer's trail:\n{trail}")

    def open(self, url: str, expect: int = 200) -> Page:
        response = self._request("GET", url)
        if response.status_code != expect:
            raise self._fail(f"GET {url}: expected {expect}, got {response.status_code}", response)
        return Page.parse(url, response)

    def status_of(self, url: str) -> int:
        return self._request("GET", url).status_code

    def submit(self, page: Page, button: Element) -> str:
        """Press a submit button; the Location of the (required) 303 answer, made absolute."""
        form = page.form_of(button)
        data = dict(form.inputs)
        if button.attrs.get("name"):
            data[button.attrs["name"]] = button.attrs.get("value", "")
        action = urljoin(page.url, form.action or page.url)
        response = self._request(form.method.upper(), action, data=data)
        return self._location(response)

    def follow(self, url: str) -> str:
        """GET a URL that must redirect (303/302); the Location, made absolute."""
        return self._location(self._request("GET", url))

    def _location(self, response: requests.Response) -> str:
        if response.status_code not in (302, 303) or "Location" not in response.headers:
            raise self._fail(f"expected a redirect, got {response.status_code}", response)
        return urljoin(response.url, response.headers["Location"])

    # -- the steps of the buyer's path ------------------------------------------------------

    def press_pay(self, checkout_page: Page) -> str:
        """Press the checkout page's pay button; the provider page's URL it redirects to."""
        button = checkout_page.find(data_action="pay")
        if button is None:
            raise self._fail(f"no pay button on {checkout_page.url}:\n{checkout_page.html[:2000]}")
        return self.submit(checkout_page, button)

    def choose(self, provider_page: Page, outcome: str) -> str:
        """Press the sandbox's succeeded/declined button; our return URL it redirects to."""
        button = provider_page.find(data_outcome=outcome)
        if button is None:
            raise self._fail(f"no {outcome!r} button on {provider_page.url}")
        return self.submit(provider_page, button)

    def pay(self, checkout_url: str, outcome: str) -> Redirect:
        """Open the checkout, pay with this outcome and come back: where the service sends the
        buyer after the return (the platform's page, or the checkout page after a decline)."""
        provider_url = self.press_pay(self.open(checkout_url))
        return_url = self.choose(self.open(provider_url), outcome)
        return Redirect(self.follow(return_url))
