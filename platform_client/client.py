"""PaymentServiceClient: the platform's HTTP client for /v1/ticket-checkouts (CONTRACT §2-§5)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from functools import lru_cache
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from platform_client.checkouts import Checkout, CheckoutRequest, checkout_from_wire
from platform_client.errors import (
    PaymentServiceError,
    PaymentServiceUnavailable,
    RateLimited,
    UnexpectedResponse,
    error_class,
)
from shared_contracts.request_ids import is_request_id

RETRY_STATUSES = frozenset({502, 503, 504})
MAX_IDEMPOTENCY_KEY = 255  # CONTRACT §5
_PATH = "/v1/ticket-checkouts"


class _Retry(Retry):
    # urllib3 would also retry a 413 or 429 that carries Retry-After; a rate limit is the
    # caller's to handle (RateLimited.retry_after), not a reason to block a web request.
    RETRY_AFTER_STATUS_CODES = frozenset()

    def increment(  # type: ignore[override]
        self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any
    ) -> Retry:
        # A connection dropped before the answer (typically a pooled keep-alive connection the
        # server closed as we reused it) is retried: every call is safe to repeat. A read
        # timeout is not: the first request may still be running, and the caller decides.
        error = kwargs.get("error")
        if isinstance(error, ReadTimeoutError):
            raise error
        return super().increment(method, url, *args, **kwargs)


def _own_session(base_url: str) -> requests.Session:
    """A session that reads the environment once, here, instead of on every call.

    With ``trust_env`` requests looks up proxy variables and ~/.netrc for each request (about
    0.1 ms of CPU per call), and a netrc entry for the service's host would replace our
    ``Authorization: Bearer`` with Basic auth. So: the proxy for ``base_url`` (honouring
    NO_PROXY) and a CA bundle from REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE are taken now, netrc
    never. A session passed in by the caller is used as it is."""
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


class PaymentServiceClient:
    """Create, read, find and cancel ticket checkouts; every error is a PaymentServiceError,
    except the caller's own mistakes (a malformed request id or Idempotency-Key, an empty
    checkout id), which are a ValueError raised before any request.

    Connection errors (refused, or dropped before the answer) and 502/503/504 are retried with
    backoff for GET and POST alike: a create always carries an Idempotency-Key, so a retry
    replays instead of creating twice, and a cancel may be repeated. Read timeouts are not
    retried (the first request may still be running; the caller decides).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 10,
        retries: int = 3,
        backoff_factor: float = 0.3,
        max_retry_after: int = 10,
        session: requests.Session | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        if "@" in urlsplit(base_url).netloc:
            # requests would swap our Bearer key for Basic auth from the URL on some paths.
            raise ValueError("base_url must not contain user information; the key is api_key")
        self.base_url = base_url.rstrip("/")
        self._authorization = f"Bearer {api_key}"  # never logged, never in repr or errors
        self._timeout = (connect_timeout, read_timeout)
        self._owns_session = session is None
        self._session = session or _own_session(self.base_url)
        retry = _Retry(
            total=retries,
            connect=retries,
            read=retries,  # connection resets; read timeouts are refused in _Retry.increment
            status=retries,
            other=0,
            redirect=0,
            allowed_methods=None,  # POST too: creation is idempotent by key
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            respect_retry_after_header=True,
            retry_after_max=max_retry_after,  # a Retry-After of an hour must not block a request
            raise_on_status=False,  # the last answer is mapped to an exception below
        )
        # Mounted for this service only, so a session shared with other code keeps its policy.
        self._session.mount(self.base_url + "/", HTTPAdapter(max_retries=retry))

    def __repr__(self) -> str:
        return f"PaymentServiceClient(base_url={self.base_url!r})"

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> PaymentServiceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def create_checkout(
        self,
        request: CheckoutRequest,
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> Checkout:
        """Create a checkout (201), or replay the first answer for a repeated key and body.

        A replay (``Checkout.replayed``) is that first answer for 24 hours, whatever became of
        the checkout since: ask ``get_checkout`` for its current status before using it.

        The default key is ``reservation:{reservation_id}``: one checkout per reservation. An
        id that cannot be sent in a header as it is (not printable ASCII, or too long) gets
        ``reservation-sha256:`` and the hex SHA-256 of its UTF-8 instead, the same for the same
        id. Pass another key when a reservation legitimately needs a new checkout, e.g. after
        its first one ended; it must be 1-255 printable ASCII characters (ValueError if not).
        """
        key = _default_key(request.reservation_id) if idempotency_key is None else idempotency_key
        _check_idempotency_key(key)
        body, replayed = self._exchange(
            "POST",
            _PATH,
            json=request.to_wire(),
            headers={"Idempotency-Key": key},
            request_id=request_id,
        )
        return _checkout(body, replayed=replayed)

    def get_checkout(self, checkout_id: str, *, request_id: str | None = None) -> Checkout:
        return _checkout(self._call("GET", _checkout_path(checkout_id), request_id=request_id))

    def find_checkouts(
        self, reservation_id: str, *, request_id: str | None = None
    ) -> list[Checkout]:
        """The checkouts of a reservation, newest first."""
        query = urlencode({"reservationId": reservation_id})
        body = self._call("GET", f"{_PATH}?{query}", request_id=request_id)
        found = body.get("data") if isinstance(body, dict) else None
        if not isinstance(found, list):
            raise UnexpectedResponse("unexpected_response", "no checkout list in the answer")
        return [_checkout(item) for item in found]

    def cancel_checkout(self, checkout_id: str, *, request_id: str | None = None) -> Checkout:
        """Cancel an open checkout; repeating it is harmless. A paid one raises InvalidState."""
        path = _checkout_path(checkout_id) + "/cancel"
        return _checkout(self._call("POST", path, request_id=request_id))

    def _call(self, method: str, path: str, *, request_id: str | None = None) -> Any:
        """The decoded JSON of a 2xx answer (see _answer), for calls that are never replays."""
        body, _ = self._exchange(method, path, request_id=request_id)
        return body

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        json: Any = None,
    ) -> tuple[Any, bool]:
        """The decoded JSON of a 2xx answer, and whether it is a replay (Idempotent-Replayed)."""
        sent = {"Authorization": self._authorization, "Accept": "application/json"}
        sent.update(headers or {})
        if request_id is not None:
            _check_request_id(request_id)
            sent["X-Request-ID"] = request_id
        try:
            response = self._send(method, self.base_url + path, sent, json)
        except requests.Timeout as exc:
            raise PaymentServiceUnavailable("timeout", _describe(exc)) from None
        except requests.RequestException as exc:
            raise PaymentServiceUnavailable("connection_error", _describe(exc)) from None
        except OSError as exc:  # e.g. a CA bundle path that does not exist (requests' own check)
            raise PaymentServiceUnavailable("connection_error", _describe(exc)) from None
        with response:
            replayed = response.headers.get("Idempotent-Replayed", "").strip().lower() == "true"
            return _answer(response), replayed

    def _send(
        self, method: str, url: str, headers: dict[str, str], json: Any = None
    ) -> requests.Response:
        if not self._owns_session:  # the caller's session: its cookies, auth and hooks apply
            return self._session.request(
                method, url, headers=headers, json=json, timeout=self._timeout,
                allow_redirects=False,
            )  # fmt: skip
        # Our own session carries no cookies, auth, hooks or environment (see _own_session), so
        # the request goes straight to the adapter mounted for the service (looked up through
        # get_adapter, so test tools that patch it still see the call): none of
        # Session.request's merging or Session.send's cookie extraction, hooks, history and
        # elapsed time (about a sixth of the client's instructions per call).
        session = self._session
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = _prepared_url(url)
        prepared.prepare_headers({**session.headers, **headers})
        prepared.prepare_body(data=None, files=None, json=json)
        response = session.get_adapter(url).send(
            prepared, stream=False, timeout=self._timeout,
            verify=True if session.verify is None else session.verify,
            cert=session.cert, proxies=session.proxies,
        )  # fmt: skip
        response.content  # noqa: B018 -- read it all, so the connection goes back to the pool
        return response


@lru_cache(maxsize=256)
def _prepared_url(url: str) -> str:
    """requests' URL preparation (IDNA host, requoting) for one URL. The create URL is the
    same on every call; a checkout's own URLs are kept until 256 others have been used."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    assert prepared.url is not None
    return prepared.url


def _default_key(reservation_id: str) -> str:
    key = f"reservation:{reservation_id}"
    if _valid_key(key):
        return key
    # surrogatepass: even a lone surrogate gets a key rather than a UnicodeEncodeError.
    digest = hashlib.sha256(reservation_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"reservation-sha256:{digest}"


def _valid_key(key: str) -> bool:
    # A header carries Latin-1 at most, and edge spaces are stripped on the way: printable
    # ASCII without them is what reaches the service exactly as sent.
    return (
        1 <= len(key) <= MAX_IDEMPOTENCY_KEY
        and key.isascii()
        and key.isprintable()
        and key == key.strip()
    )


def _check_idempotency_key(key: str) -> None:
    if not _valid_key(key):
        raise ValueError(
            f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters "
            "without leading or trailing spaces"
        )


def _check_request_id(request_id: str) -> None:
    # The service silently replaces any other X-Request-ID with its own, and requests refuses
    # one with a line break as an invalid header: both are the caller's mistake.
    if not is_request_id(request_id):
        raise ValueError("request_id must be 1-128 characters of A-Z a-z 0-9 . _ : - (CONTRACT §4)")


def _checkout_path(checkout_id: str) -> str:
    if not checkout_id:
        raise ValueError("checkout_id is required")
    return f"{_PATH}/{quote(checkout_id, safe='')}"


def _describe(exc: OSError) -> str:
    # The class name and URL are enough; requests never puts headers (the key) in messages.
    return f"{type(exc).__name__}: {exc}"


def _checkout(body: Any, *, replayed: bool = False) -> Checkout:
    try:
        return checkout_from_wire(body, replayed=replayed)
    except ValueError as exc:
        raise UnexpectedResponse("unexpected_response", f"not a checkout: {exc}") from None


def _answer(response: requests.Response) -> Any:
    """The decoded JSON of a 2xx answer; any other answer raises its PaymentServiceError."""
    request_id = response.headers.get("X-Request-ID")
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if 200 <= status < 300:
        if body is None:
            raise UnexpectedResponse(
                "unexpected_response", "a success without a JSON body", request_id, status=status
            )
        return body
    raise _error(status, body, request_id, response.headers.get("Retry-After"))


def _error(
    status: int, body: Any, request_id: str | None, retry_after: str | None
) -> PaymentServiceError:
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and isinstance(error.get("code"), str)):
        if status >= 500:
            return PaymentServiceUnavailable(
                "unavailable", f"HTTP {status} without the error envelope", request_id, None, status
            )
        return UnexpectedResponse(
            "unexpected_response",
            f"HTTP {status} without the error envelope",
            request_id,
            None,
            status,
        )
    details = error.get("details")
    exc = error_class(error["code"], status)(
        error["code"],
        str(error.get("message", "")),
        error.get("requestId") or request_id,
        details if isinstance(details, dict) else None,
        status,
    )
    if isinstance(exc, RateLimited) and retry_after and retry_after.strip().isdigit():
        exc.retry_after = float(retry_after)
    return exc
