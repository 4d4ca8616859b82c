"""Rules of the SDK that need no server: configuration, token format, retry decisions,
error mapping, model parsing, secret hygiene of objects."""

from __future__ import annotations

import inspect
from datetime import datetime, timezone

import httpx
import pytest
from conftest import crc_base62, make_token

import latchkey
from latchkey import (
    APIError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConfigurationError,
    ConflictError,
    CreatedToken,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    Token,
    ValidationError,
)
from latchkey._http import (
    AuthState,
    RequestSpec,
    RetryPolicy,
    error_from_response,
    parse_retry_after,
)
from latchkey._models import parse_datetime

TOKEN_JSON = {
    "id": "01a2155c-455f-754b-bc54-70aa749cfc2c",
    "name": "Initial admin token",
    "type": "personal",
    "hint": "lkp_…9Dll",
    "workspace_id": "w1",
    "workspace_name": "Workspace 1",
    "owner_id": "u1",
    "owner_username": "admin",
    "created_by": "u1",
    "scopes": ["projects:read", "admin"],
    "projects": [],
    "environment": None,
    "created_at": "2026-11-26T00:58:18Z",
    "expires_at": "2027-08-23T00:58:18Z",
    "last_used_at": None,
    "last_used_ip": None,
    "state": "active",
    "some_future_field": 1,
}


# ----------------------------------------------------------------------------- configuration


def test_url_without_scheme_means_https() -> None:
    assert Client("latchkey.example.com", "x").base_url == "https://latchkey.example.com"
    assert Client("localhost:8080/", "x").base_url == "https://localhost:8080"
    assert Client("http://127.0.0.1:9/", "x").base_url == "http://127.0.0.1:9"
    assert Client("https://h.example/prefix/", "x").base_url == "https://h.example/prefix"
    assert AsyncClient("h.example", "x").base_url == "https://h.example"


def test_client_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token()
    monkeypatch.setenv("LATCHKEY_URL", "keys.example.com")
    monkeypatch.setenv("LATCHKEY_API_KEY", token)
    client = Client()
    assert client.base_url == "https://keys.example.com"
    assert client.auth_mode == "access_token"  # a personal token is exchanged for a JWT
    assert Client(jwt_exchange=False).auth_mode == "token"
    assert Client("other.example", make_token("lkc")).auth_mode == "token"


def test_missing_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="LATCHKEY_URL"):
        Client()
    with pytest.raises(ConfigurationError):
        Client("ftp://x.example", "t")


def test_a_client_without_a_token_says_what_to_set() -> None:
    for cls in (Client, AsyncClient):
        with pytest.raises(ConfigurationError) as err:
            cls("keys.example.com")
        message = str(err.value)
        assert "LATCHKEY_API_KEY" in message and "anonymous=True" in message
        with pytest.raises(ConfigurationError, match="LATCHKEY_API_KEY"):
            cls("keys.example.com", "  ")
        assert cls("keys.example.com", anonymous=True).auth_mode == "none"
        with pytest.raises(ConfigurationError, match="contradict"):
            cls("keys.example.com", make_token(), anonymous=True)


def test_repr_never_shows_the_token() -> None:
    token = make_token()
    for client in (Client("h.example", token), AsyncClient("h.example", token)):
        text = repr(client) + str(client) + repr(client._core.auth)
        assert token not in text
        assert f"lkp_…{token[-4:]}" in text


# ----------------------------------------------------------------------------- token format


def test_token_format_helpers() -> None:
    token = make_token("lkc")
    assert latchkey.is_well_formed(token)
    assert latchkey.token_type_of(token) == "client"
    assert latchkey.TOKEN_PATTERN.search(f"key={token};")
    broken = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert not latchkey.is_well_formed(broken)
    assert not latchkey.is_well_formed("lkx_" + token[4:])
    # The example from the Rust e2e tests: 32 × "A".
    assert crc_base62("A" * 32) == "3Ae0o2"
    assert latchkey.is_well_formed("lkp_" + "A" * 32 + "3Ae0o2")


# ----------------------------------------------------------------------------- retries


def _response(status: int, headers: dict = None, json: object = None) -> httpx.Response:
    request = httpx.Request("GET", "http://x/y")
    return httpx.Response(status, headers=headers or {}, json=json, request=request)


@pytest.mark.parametrize(
    "method,key,retryable",
    [
        ("GET", None, True),
        ("PUT", None, True),
        ("DELETE", None, True),
        ("HEAD", None, True),
        ("POST", None, False),
        ("PATCH", None, False),
        ("POST", "idem-1", True),
    ],
)
def test_only_idempotent_requests_are_retried(method: str, key: str, retryable: bool) -> None:
    policy = RetryPolicy(max_retries=2)
    spec = RequestSpec(method, "/p", idempotency_key=key)
    assert (policy.delay_after_error(0, spec) is not None) == retryable
    assert (policy.delay_after_status(0, spec, _response(503)) is not None) == retryable
    assert (policy.delay_after_status(0, spec, _response(429)) is not None) == retryable


def test_retry_statuses_and_retry_after() -> None:
    policy = RetryPolicy(max_retries=2, max_retry_after=30)
    get = RequestSpec("GET", "/p")
    for status in (400, 401, 403, 404, 409, 413, 422, 500, 502):
        assert policy.delay_after_status(0, get, _response(status)) is None, status
    assert policy.delay_after_status(0, get, _response(429, {"Retry-After": "7"})) == 7
    assert policy.delay_after_status(0, get, _response(503, {"Retry-After": "0"})) == 0
    # Longer than the client will wait: not retried, the error carries retry_after.
    assert policy.delay_after_status(0, get, _response(429, {"Retry-After": "120"})) is None
    assert policy.delay_after_status(2, get, _response(429, {"Retry-After": "1"})) is None
    # Backoff grows and stays bounded.
    delays = [policy.backoff(n) for n in range(10)]
    assert all(0 < d <= policy.max_backoff for d in delays)
    assert policy.backoff(3) > policy.backoff(0)


def test_parse_retry_after_http_date() -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after("Tue, 01 Jan 2030 00:00:10 GMT", now=now) == 10
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "status,cls",
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, ValidationError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
        (413, APIError),
    ],
)
def test_error_classes_by_status(status: int, cls: type) -> None:
    body = {
        "error": {"code": "some_code", "message": "what happened", "field": "name", "limit": "x"}
    }
    err = error_from_response(_response(status, {"Retry-After": "3"}, body))
    assert type(err) is cls and isinstance(err, APIError)
    assert (err.status, err.code, err.message, err.field, err.limit) == (
        status,
        "some_code",
        "what happened",
        "name",
        "x",
    )
    assert err.retry_after == 3
    assert "what happened" in str(err)


def test_error_without_json_body() -> None:
    request = httpx.Request("GET", "http://x/y")
    err = error_from_response(httpx.Response(502, text="<html>bad gateway</html>", request=request))
    assert isinstance(err, ServerError) and err.status == 502 and err.code == "http_502"


# ----------------------------------------------------------------------------- models


def test_token_models_and_the_secret() -> None:
    token = Token.from_dict(TOKEN_JSON)
    assert token.created_at == datetime(2026, 11, 26, 0, 58, 18, tzinfo=timezone.utc)
    assert token.last_used_at is None and token.active
    assert not hasattr(token, "token")
    secret = make_token()
    created = CreatedToken.from_dict(dict(TOKEN_JSON, token=secret))
    assert isinstance(created, Token) and created.secret == secret == created.token
    assert secret not in repr(created) and secret not in str(created)
    assert not hasattr(created.without_secret(), "token")


def test_parse_datetime_variants() -> None:
    utc = timezone.utc
    assert parse_datetime("2027-08-22T10:00:00Z") == datetime(2027, 8, 22, 10, tzinfo=utc)
    assert parse_datetime("2027-08-22T10:00:00.123456789Z") == datetime(
        2027, 8, 22, 10, 0, 0, 123456, tzinfo=utc
    )
    assert parse_datetime("2027-08-22T12:00:00+02:00") == datetime(2027, 8, 22, 10, tzinfo=utc)
    with pytest.raises(ValueError):
        parse_datetime("yesterday")


# ----------------------------------------------------------------------------- JWT timing


def test_refresh_margin_is_a_fifth_of_the_lifetime_at_most_30s() -> None:
    now = [1000.0]
    state = AuthState(make_token(), None, clock=lambda: now[0])
    assert state.wants_refresh()
    state.accept_refresh("jwt", 300, sent_at=1000.0)
    assert not state.wants_refresh()
    now[0] = 1000.0 + 268.9
    assert not state.wants_refresh()
    now[0] = 1000.0 + 269.0  # 30 s (+1 s of whole-second exp) before expiry
    assert state.wants_refresh()
    state.accept_refresh("jwt2", 3, sent_at=now[0])
    now[0] += 1.3
    assert not state.wants_refresh()
    now[0] += 0.2  # 1.5 s: the JWT may end at 2.0 s; keep 20 % (0.6 s) spare
    assert state.wants_refresh()
    # Sessions never exchange; other prefixes never exchange.
    state.set_session("lks_x")
    assert not state.wants_refresh() and state.mode == "session"
    assert not AuthState(make_token("lkc"), None).wants_refresh()


# ----------------------------------------------------------------------------- surface parity


def _public(obj: object) -> dict:
    return {n: getattr(obj, n) for n in dir(obj) if not n.startswith("_")}


@pytest.mark.parametrize(
    "sync_cls,async_cls",
    [
        (latchkey.Client, latchkey.AsyncClient),
        (latchkey.Tokens, latchkey.AsyncTokens),
        (latchkey.Members, latchkey.AsyncMembers),
        (latchkey.Users, latchkey.AsyncUsers),
    ],
)
def test_async_client_has_the_same_surface(sync_cls: type, async_cls: type) -> None:
    sync_members = _public(sync_cls)
    async_members = _public(async_cls)
    renamed = {"close": "aclose"}
    for name, member in sync_members.items():
        async_name = renamed.get(name, name)
        assert async_name in async_members, f"{async_cls.__name__} lacks {async_name}"
        if isinstance(member, property):
            continue
        amember = async_members[async_name]
        # List methods return an AsyncPaginator (await it, or `async for` over it).
        returns_paginator = "AsyncPaginator" in str(inspect.signature(amember).return_annotation)
        assert (
            inspect.iscoroutinefunction(amember)
            or inspect.isasyncgenfunction(amember)
            or returns_paginator
        ), async_name
        sync_params = list(inspect.signature(member).parameters.values())
        async_params = list(inspect.signature(amember).parameters.values())
        assert [(p.name, p.kind, p.default) for p in sync_params] == [
            (p.name, p.kind, p.default) for p in async_params
        ], name


def test_py_typed_ships_with_the_package() -> None:
    from pathlib import Path

    assert (Path(latchkey.__file__).parent / "py.typed").is_file()


def test_request_specs_hide_bodies() -> None:
    secret = make_token()
    spec = RequestSpec("POST", "/api/v1/token/refresh", json={"refresh": secret})
    assert secret not in repr(spec)
    assert secret not in repr(AuthState(secret, None).refresh_spec())


def test_http_library_debug_logs_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    secret = make_token("lka")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpcore.http11").debug(
        "receive_response_headers.complete return_value=%r",
        [(b"set-cookie", b"latchkey_session=lks_abcdef; Path=/"), (b"x", secret.encode())],
    )
    assert "lks_abcdef" not in caplog.text and secret not in caplog.text
    assert "latchkey_session=<redacted>" in caplog.text
