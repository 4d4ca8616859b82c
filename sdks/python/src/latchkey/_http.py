"""The transport-independent core shared by :class:`~latchkey.Client` and
:class:`~latchkey.AsyncClient`.

Every rule lives here once: building requests, authentication (personal token → access JWT
exchange and refresh, session cookies), retries with backoff, and turning error answers into
exceptions. The rules are written as generators ("flows") that *yield* what they need done —
send this request, sleep this long, make sure the access token is fresh — and receive the
result. The sync client drives a flow with blocking calls and a ``threading.Lock``, the async
client with ``await`` and an ``asyncio.Lock``; neither decides anything itself.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.cookies import CookieError, SimpleCookie
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Generic,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
)
from urllib.parse import quote, urlsplit

import httpx

from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    error_class_for,
)
from ._format import hint_of
from ._models import RateLimitStatus, format_datetime, parse_datetime
from ._version import __version__

logger = logging.getLogger("latchkey")

T = TypeVar("T")

ENV_URL = "LATCHKEY_URL"
ENV_API_KEY = "LATCHKEY_API_KEY"
SESSION_COOKIE = "latchkey_session"
REFRESH_PATH = "/api/v1/token/refresh"
EXPIRATION_HEADER = "latchkey-token-expiration"
USER_AGENT = f"latchkey-python/{__version__}"

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
#: A token expiring sooner than this gets one :class:`TokenExpiringWarning` per client.
WARN_BEFORE_SECONDS = 7 * 86400


class TokenExpiringWarning(UserWarning):
    """The token in use expires within 7 days (its ``Latchkey-Token-Expiration``): rotate
    it before requests start failing with 401. Emitted once per client with
    :func:`warnings.warn`; silence it with ``warnings.filterwarnings``."""


IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 503})


class _NoBody:
    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Any = _NoBody()


class NotGiven:
    """Marks an argument that was not passed, where ``None`` means something (``null``:
    unlimited or the default) in a ``PATCH``."""

    _instance: Optional["NotGiven"] = None

    def __new__(cls) -> "NotGiven":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()


# --------------------------------------------------------------------------- configuration


def resolve_base_url(url: Optional[str]) -> str:
    """The base URL from the argument or ``LATCHKEY_URL``; no scheme means ``https://``."""
    if url is None:
        url = os.environ.get(ENV_URL)
    if url is None or not str(url).strip():
        raise ConfigurationError(
            f"no server URL: pass Client(url, token) or set {ENV_URL} "
            f"(and {ENV_API_KEY} for the token)"
        )
    url = str(url).strip()
    if "://" not in url:
        url = "https://" + url
    try:
        parsed = httpx.URL(url)
    except Exception as exc:  # httpx.InvalidURL and friends
        raise ConfigurationError(f"invalid server URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"invalid server URL {url!r}: expected http(s)://host[:port]")
    return url.rstrip("/")


def resolve_token(token: Optional[str], *, anonymous: bool = False) -> Optional[str]:
    """The token from the argument or ``LATCHKEY_API_KEY``.

    Without one, a client fails here, at construction, naming what to set, rather than at
    its first call with a 401; ``anonymous=True`` builds a client for the public calls
    only (``None``)."""
    if anonymous:
        if token is not None and str(token).strip():
            raise ConfigurationError("a token and anonymous=True contradict each other")
        return None
    if token is None:
        token = os.environ.get(ENV_API_KEY)
    token = (token or "").strip()
    if not token:
        raise ConfigurationError(
            f"no API token: pass Client(url, token) or set {ENV_API_KEY}; "
            "for public calls only (verify, sign_in, health, report_leaked) "
            "pass anonymous=True"
        )
    return token


def seg(value: Any) -> str:
    """One URL path segment, percent-encoded (workspace names may hold spaces or slashes)."""
    text = str(value)
    if not text:
        raise ValueError("an id or name must not be empty")
    return quote(text, safe="")


def query(params: Mapping[str, Any]) -> Dict[str, str]:
    """Query parameters without the ``None`` ones, times as RFC 3339."""
    out: Dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            out[key] = format_datetime(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RequestSpec:
    """What to send, before authentication and transport details are added."""

    method: str
    path: str
    params: Optional[Mapping[str, Any]] = None
    # Bodies and headers may hold secrets (a password, a token to verify): never in repr().
    json: Any = field(default=NO_BODY, repr=False)
    form: Optional[Mapping[str, str]] = field(default=None, repr=False)
    content: Optional[bytes] = field(default=None, repr=False)
    headers: Optional[Mapping[str, str]] = field(default=None, repr=False)
    idempotency_key: Optional[str] = None
    #: Send the client's credential.
    auth: bool = True
    #: Safe to retry although the method is not idempotent (the token exchange).
    retry_unsafe: bool = False

    @property
    def retryable(self) -> bool:
        return (
            self.method.upper() in IDEMPOTENT_METHODS
            or bool(self.idempotency_key)
            or self.retry_unsafe
        )


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: the request and how to read its answer."""

    spec: RequestSpec
    parse: Callable[[httpx.Response], T]
    #: Runs on the success response before ``parse`` (e.g. keep a session cookie).
    after: Optional[Callable[["AuthState", httpx.Response], None]] = None


def json_body(response: httpx.Response) -> Any:
    """The decoded JSON of a success response (``None`` for an empty body)."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise APIError(
            response.status_code,
            "invalid_response",
            f"the server answered {response.request.method} {response.request.url.path} "
            "with a body that is not JSON; is the URL a Latchkey server?",
        ) from None


def parse_json(build: Callable[[Any], T]) -> Callable[[httpx.Response], T]:
    """A parser that decodes JSON and builds a model from it."""

    def parse(response: httpx.Response) -> T:
        data = json_body(response)
        try:
            return build(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise APIError(
                response.status_code,
                "invalid_response",
                f"unexpected answer from {response.request.url.path}: {type(exc).__name__}: {exc}",
            ) from None

    return parse


def parse_none(response: httpx.Response) -> None:
    return None


# --------------------------------------------------------------------------- errors


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error answer, with the server's code and message."""
    status = response.status_code
    code = f"http_{status}"
    message = response.reason_phrase or "error"
    field = limit = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code") or code)
        message = str(err.get("message") or message)
        field = err.get("field")
        limit = err.get("limit")
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    return error_class_for(status)(
        status,
        code,
        message,
        field=field,
        limit=limit,
        retry_after=retry_after,
        rate_limit=RateLimitStatus.from_headers(response.headers),
    )


def connection_error(exc: httpx.TransportError, request: httpx.Request) -> APIConnectionError:
    where = f"{request.method} {request.url.copy_with(query=None)}"
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"request timed out: {where}")
    return APIConnectionError(f"cannot reach the server: {where}: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- retries


@dataclass
class RetryPolicy:
    """When and how long to wait before trying a request again.

    Retried: connection errors and 429/503 answers, and only for idempotent methods (GET,
    HEAD, OPTIONS, PUT, DELETE) or requests that carry an ``Idempotency-Key``; never another
    4xx. A ``Retry-After`` answer is honoured; one longer than ``max_retry_after`` is not
    waited for (the error is raised with ``.retry_after`` set). Otherwise exponential backoff
    with jitter: ``initial_backoff`` × 2ⁿ, at most ``max_backoff``."""

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        base = min(self.max_backoff, self.initial_backoff * (2.0**attempt))
        return base * (0.5 + random.random() / 2)

    def delay_after_error(self, attempt: int, spec: RequestSpec) -> Optional[float]:
        if attempt >= self.max_retries or not spec.retryable:
            return None
        return self.backoff(attempt)

    def delay_after_status(
        self, attempt: int, spec: RequestSpec, response: httpx.Response
    ) -> Optional[float]:
        if response.status_code not in RETRY_STATUSES:
            return None
        if attempt >= self.max_retries or not spec.retryable:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None:
            return self.backoff(attempt)
        if retry_after > self.max_retry_after:
            return None
        return retry_after


# --------------------------------------------------------------------------- authentication


class AuthState:
    """The client's credential and what it has turned into.

    * a personal token (``lkp_``) is exchanged for a short-lived access JWT at
      ``POST /api/v1/token/refresh`` and refreshed when less than 20 % of its lifetime (at
      most 30 s, plus 1 s for the whole-second ``exp``) is left; a server without the route
      (404) or one that refuses the exchange for this token (403 ``token_type_not_allowed``)
      makes the client send the token as it is;
    * other tokens are sent as they are, as ``Authorization: Bearer``;
    * after :meth:`Client.sign_in`, the session cookie is sent instead of any token.
    """

    def __init__(
        self,
        token: Optional[str],
        exchange: Optional[bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token = token
        if exchange is None:
            exchange = bool(token) and str(token).startswith("lkp_")
        self._exchange = bool(exchange) and bool(token)
        self._access: Optional[str] = None
        self._refresh_at = 0.0
        self._session: Optional[str] = None
        self.clock = clock
        #: The last ``Latchkey-Token-Expiration`` the server sent.
        self.token_expiration: Optional[datetime] = None
        self._warned = False

    def __repr__(self) -> str:
        return f"<AuthState mode={self.mode} token={hint_of(self._token)}>"

    @property
    def has_token(self) -> bool:
        return self._token is not None

    @property
    def token_hint(self) -> str:
        return hint_of(self._token)

    @property
    def mode(self) -> str:
        """``session``, ``access_token`` (JWT exchange), ``token`` (as it is) or ``none``."""
        if self._session is not None:
            return "session"
        if self._token is None:
            return "none"
        return "access_token" if self._exchange else "token"

    # -- JWT exchange

    def wants_refresh(self) -> bool:
        return (
            self._session is None
            and self._exchange
            and (self._access is None or self.clock() >= self._refresh_at)
        )

    def refresh_spec(self) -> RequestSpec:
        return RequestSpec(
            "POST",
            REFRESH_PATH,
            json={"refresh": self._token},
            auth=False,
            retry_unsafe=True,
        )

    def accept_refresh(self, access: str, expires_in: float, sent_at: float) -> None:
        # A JWT's `exp` is whole seconds, so it may end up to 1 s before `expires_in` says:
        # count from the request's start, drop that second, then keep 20 % (≤ 30 s) spare.
        margin = min(0.2 * expires_in, 30.0)
        self._access = access
        self._refresh_at = sent_at + max(0.0, expires_in - 1.0 - margin)

    def disable_exchange(self, why: str) -> None:
        self._exchange = False
        self._access = None
        logger.info("latchkey: sending token %s as it is: %s", self.token_hint, why)

    def invalidate_access(self, used: Optional[str]) -> None:
        if used is not None and self._access == used:
            self._access = None

    # -- sessions

    def set_session(self, value: str) -> None:
        self._session = value

    def clear_session(self) -> None:
        self._session = None

    @property
    def has_session(self) -> bool:
        return self._session is not None

    # -- per request

    def headers(self) -> Tuple[Dict[str, str], Optional[str]]:
        """Headers that authenticate a request, and the access JWT used (if one was)."""
        if self._session is not None:
            return {"Cookie": f"{SESSION_COOKIE}={self._session}"}, None
        if self._token is None:
            return {}, None
        access = self._access if self._exchange else None
        if access is not None:
            return {"Authorization": f"Bearer {access}"}, access
        return {"Authorization": f"Bearer {self._token}"}, None

    def observe(self, response: httpx.Response, via_access: bool = False) -> None:
        value = response.headers.get(EXPIRATION_HEADER)
        if not value:
            return
        try:
            expires = parse_datetime(value)
        except ValueError:
            return
        self.token_expiration = expires
        # On a JWT request the header is the JWT's own (minutes away), not the token's.
        if expires is None or via_access or self._session is not None or self._warned:
            return
        left = expires.timestamp() - time.time()
        if left < WARN_BEFORE_SECONDS:
            self._warned = True
            days = max(0, int(left // 86400))
            warnings.warn(
                f"latchkey: the token {self.token_hint} expires {format_datetime(expires)} "
                f"(in {days} days): rotate it",
                TokenExpiringWarning,
                stacklevel=2,
            )


def session_from(response: httpx.Response) -> Optional[str]:
    """The session cookie's value from a sign-in answer."""
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        morsel = jar.get(SESSION_COOKIE)
        if morsel is not None and morsel.value:
            return morsel.value
    return None


def keep_session(auth: AuthState, response: httpx.Response) -> None:
    value = session_from(response)
    if value is None:
        raise APIError(
            response.status_code,
            "invalid_response",
            "the sign-in answer set no session cookie",
        )
    auth.set_session(value)


# --------------------------------------------------------------------------- flows


class Send:
    """Flow action: send this request; the driver answers with the response or throws the
    ``httpx.TransportError`` into the flow."""

    __slots__ = ("request",)

    def __init__(self, request: httpx.Request) -> None:
        self.request = request


class Sleep:
    """Flow action: wait this many seconds."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class EnsureFresh:
    """Flow action: under the refresh lock, run :meth:`Core.refresh_flow` if
    :meth:`AuthState.wants_refresh` still says so."""

    __slots__ = ()


ENSURE_FRESH = EnsureFresh()

Action = Union[Send, Sleep, EnsureFresh]
Flow = Generator[Action, Any, T]


def no_cookie_jar() -> httpx.Cookies:
    """A cookie jar that keeps nothing: the session cookie is handled explicitly, so a
    client never sends cookies it was not asked to."""
    from http.cookiejar import CookieJar, DefaultCookiePolicy

    return httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))


class Core:
    """State and rules of one client; see the module docstring."""

    def __init__(
        self,
        url: str,
        token: Optional[str],
        *,
        timeout: Union[float, httpx.Timeout, None],
        max_retries: int,
        jwt_exchange: Optional[bool],
        headers: Optional[Mapping[str, str]],
        http_client: Union[httpx.Client, httpx.AsyncClient],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = url  # already resolved by the caller
        self.auth = AuthState(token, jwt_exchange, clock)
        self.retry = RetryPolicy(max_retries=max_retries)
        self.timeout = timeout
        self.headers: Dict[str, str] = dict(headers or {})
        self.http = http_client

    def __repr__(self) -> str:
        return f"base_url={self.base_url!r}, auth={self.auth.mode}, token={self.auth.token_hint}"

    # -- requests

    def build(self, spec: RequestSpec) -> Tuple[httpx.Request, Optional[str]]:
        headers: Dict[str, str] = {"Accept": "application/json", "User-Agent": USER_AGENT}
        headers.update(self.headers)
        used_access: Optional[str] = None
        if spec.auth:
            auth_headers, used_access = self.auth.headers()
            headers.update(auth_headers)
        if spec.idempotency_key:
            headers["Idempotency-Key"] = spec.idempotency_key
        if spec.headers:
            headers.update(spec.headers)
        content: Optional[bytes] = None
        data: Optional[Mapping[str, str]] = None
        if spec.json is not NO_BODY:
            content = jsonlib.dumps(spec.json, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif spec.form is not None:
            data = dict(spec.form)
        elif spec.content is not None:
            content = spec.content
        request = self.http.build_request(
            spec.method,
            self.base_url + spec.path,
            params=query(spec.params) if spec.params else None,
            headers=headers,
            content=content,
            data=data,
            timeout=self.timeout,
        )
        if not spec.auth and "Cookie" in request.headers:
            # A public route gets no credential, and that includes a session cookie an
            # ``http_client`` of the caller's kept in its own jar from the sign-in answer.
            del request.headers["Cookie"]
        if "Cookie" in request.headers:
            # Cookie-authenticated writes must name their origin (the server refuses them
            # without Origin or Sec-Fetch-Site: its CSRF check), whether the cookie is the
            # session this client keeps or one from the ``http_client``'s own jar.
            base = urlsplit(str(self.base_url))
            request.headers["Origin"] = f"{base.scheme}://{base.netloc}"
        return request, used_access

    def request_flow(self, spec: RequestSpec) -> Flow[httpx.Response]:
        """Sends ``spec`` with authentication and retries; returns a 2xx/3xx response or
        raises :class:`APIError` / :class:`APIConnectionError`."""
        attempt = 0
        reauthenticated = False
        while True:
            if spec.auth and self.auth.wants_refresh():
                yield ENSURE_FRESH
            request, used_access = self.build(spec)
            try:
                response: httpx.Response = yield Send(request)
            except httpx.TransportError as exc:
                delay = self.retry.delay_after_error(attempt, spec)
                if delay is None:
                    raise connection_error(exc, request) from exc
                logger.info(
                    "latchkey: %s %s failed (%s); retry %d of %d in %.2fs",
                    spec.method,
                    spec.path,
                    type(exc).__name__,
                    attempt + 1,
                    self.retry.max_retries,
                    delay,
                )
                yield Sleep(delay)
                attempt += 1
                continue
            self.auth.observe(response, via_access=used_access is not None)
            status = response.status_code
            logger.debug("latchkey: %s %s -> %d", spec.method, spec.path, status)
            if status == 401 and used_access is not None and not reauthenticated:
                # The access JWT was refused (expired early, keys rotated, clock skew):
                # exchange the personal token again, once. The request was not processed.
                self.auth.invalidate_access(used_access)
                reauthenticated = True
                continue
            if status < 300:
                return response
            if status < 400:
                # Redirects are not followed: the credential must not travel to another URL.
                location = response.headers.get("location", "?")
                raise APIError(
                    status,
                    "unexpected_redirect",
                    f"the server redirected {spec.method} {spec.path} to {location}; "
                    "give the client the server's final URL",
                )
            delay = self.retry.delay_after_status(attempt, spec, response)
            if delay is None:
                raise error_from_response(response)
            logger.info(
                "latchkey: %s %s answered %d; retry %d of %d in %.2fs",
                spec.method,
                spec.path,
                status,
                attempt + 1,
                self.retry.max_retries,
                delay,
            )
            yield Sleep(delay)
            attempt += 1

    def refresh_flow(self) -> Flow[None]:
        """Exchanges the personal token for an access JWT (run under the refresh lock)."""
        sent_at = self.auth.clock()
        try:
            response = yield from self.request_flow(self.auth.refresh_spec())
        except PermissionDeniedError as exc:
            if exc.code != "token_type_not_allowed":
                raise
            self.auth.disable_exchange("the server does not exchange this token for a JWT")
            return None
        except NotFoundError as exc:
            if exc.code not in ("not_found", "http_404"):
                raise
            self.auth.disable_exchange("the server has no token refresh route")
            return None
        body = json_body(response)
        try:
            access = str(body["access"])
            expires_in = float(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            raise APIError(
                response.status_code, "invalid_response", "unexpected token refresh answer"
            ) from None
        self.auth.accept_refresh(access, expires_in, sent_at)
        logger.debug(
            "latchkey: exchanged token %s for an access JWT valid %ss",
            self.auth.token_hint,
            int(expires_in),
        )
        return None

    def call_flow(self, call: "Call[T]") -> Flow[T]:
        response = yield from self.request_flow(call.spec)
        if call.after is not None:
            call.after(self.auth, response)
        return call.parse(response)

    def sign_out_flow(self) -> Flow[None]:
        if not self.auth.has_session:
            return None
        try:
            yield from self.request_flow(RequestSpec("DELETE", "/api/v1/session"))
        finally:
            self.auth.clear_session()
        return None
