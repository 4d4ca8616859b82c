"""Personal token → access JWT exchange, refreshed before expiry, thread-safe.

The shared server issues JWTs that live 3 s (``[jwt] ttl_secs = 3``), so refreshes happen
within a test. These tests skip (with the reason printed) only when the server answers 404
for ``POST /api/v1/token/refresh``; under LATCHKEY_TEST_REQUIRE_ALL=1 that is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from conftest import RequestLog, Server, unique

from latchkey import AuthenticationError, Client

REFRESH = "/api/v1/token/refresh"
TTL = 3.0

pytestmark = pytest.mark.usefixtures("jwt_route")


def jwt_claims(authorization: str) -> dict:
    token = authorization.split(" ", 1)[1]
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def is_jwt(authorization: str) -> bool:
    return authorization.startswith("Bearer ey") and authorization.count(".") == 2


def test_personal_token_is_exchanged_for_an_access_jwt(
    server: Server, request_log: RequestLog
) -> None:
    with Client(server.url, server.admin_token, http_client=request_log.http_client()) as client:
        assert client.auth_mode == "access_token"
        assert client.me().username == "admin"
        client.list_projects()
        assert request_log.paths() == [REFRESH, "/api/v1/me", "/projects"]
        # The refresh carries the personal token in its body, never in a header.
        refresh = request_log.requests[0]
        assert "authorization" not in refresh.headers
        assert json.loads(refresh.content) == {"refresh": server.admin_token}
        # API calls carry the JWT, not the personal token.
        for auth in request_log.authorizations("/api/v1/me") + request_log.authorizations(
            "/projects"
        ):
            assert is_jwt(auth) and server.admin_token not in auth
        claims = jwt_claims(request_log.authorizations("/api/v1/me")[0])
        assert claims["sub"] == client.me().id and "pat" in claims
        # The expiry header now gives the JWT's, seconds away.
        expiry = client.token_expiration
        assert expiry is not None
        assert expiry - datetime.now(timezone.utc) < timedelta(seconds=TTL + 2)


def test_jwt_is_refreshed_before_it_expires(server: Server, request_log: RequestLog) -> None:
    with Client(server.url, server.admin_token, http_client=request_log.http_client()) as client:
        started = time.monotonic()
        calls = 0
        while time.monotonic() - started < 2 * TTL:
            client.me()  # never a 401: the JWT is replaced before it runs out
            calls += 1
            time.sleep(0.1)
        refreshes = request_log.count(REFRESH)
        # 6 s of JWTs that live 2-3 s, refreshed ~1.4 s after each exchange: about 4, not
        # one per call.
        assert 2 <= refreshes <= 7, refreshes
        assert calls > 3 * refreshes
        assert all(r.status_code == 200 for r in request_log.responses)


def test_threads_share_one_refresh(server: Server, request_log: RequestLog) -> None:
    client = Client(server.url, server.admin_token, http_client=request_log.http_client())
    errors: list = []
    start = threading.Event()

    def work() -> None:
        start.wait()
        try:
            deadline = time.monotonic() + 2 * TTL
            while time.monotonic() < deadline:
                client.list_projects()
                time.sleep(0.02)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join()
    client.close()
    assert not errors, errors
    refreshes = request_log.count(REFRESH)
    assert 1 <= refreshes <= 7, refreshes  # ~6 s / 1.4 s per JWT, whatever the thread count
    assert len(request_log.requests) > 8 * refreshes


def test_other_token_types_are_sent_as_they_are(
    admin: Client, server: Server, request_log: RequestLog
) -> None:
    created = admin.tokens.create("Workspace 1", unique("client"), type="client")
    with Client(server.url, created.token, http_client=request_log.http_client()) as client:
        client.list_projects()
        assert request_log.count(REFRESH) == 0
        assert request_log.authorizations() == [f"Bearer {created.token}"]


def test_refused_exchange_falls_back_to_the_token(
    admin: Client, server: Server, request_log: RequestLog
) -> None:
    # Forcing the exchange for a client token: the server answers 403 token_type_not_allowed
    # and the client goes on with the token as it is.
    created = admin.tokens.create("Workspace 1", unique("client"), type="client")
    with Client(
        server.url, created.token, jwt_exchange=True, http_client=request_log.http_client()
    ) as client:
        assert client.auth_mode == "access_token"
        client.list_projects()
        client.list_projects()
        assert request_log.paths() == [REFRESH, "/projects", "/projects"]
        assert request_log.responses[0].status_code == 403
        assert request_log.responses[0].json()["error"]["code"] == "token_type_not_allowed"
        assert client.auth_mode == "token"


def test_revoking_the_personal_token_stops_its_jwt(
    admin: Client, server: Server, request_log: RequestLog
) -> None:
    created = admin.tokens.create("Workspace 1", unique("pat"), expires_in_days=1)
    with Client(server.url, created.token, http_client=request_log.http_client()) as client:
        client.me()
        admin.tokens.revoke(created.id)
        with pytest.raises(AuthenticationError) as err:
            client.me()
        assert err.value.status == 401
        # The JWT was refused, and so was the one fresh exchange the client then tried.
        assert request_log.paths()[-1] == REFRESH
        assert request_log.responses[-1].status_code == 401
        admin.tokens.restore(created.id)
        assert client.me().username == "admin"


def test_a_bad_personal_token_fails_at_the_exchange(server: Server) -> None:
    from conftest import make_token

    with Client(server.url, make_token("lkp")) as client:
        with pytest.raises(AuthenticationError) as err:
            client.me()
        assert err.value.code in ("invalid_token", "unauthenticated")


@pytest.mark.anyio
async def test_async_tasks_share_one_refresh(server: Server, request_log: RequestLog) -> None:
    async with server.async_client(http_client=request_log.async_http_client()) as client:
        results = await asyncio.gather(*(client.me() for _ in range(20)))
        assert {m.username for m in results} == {"admin"}
        assert request_log.count(REFRESH) == 1
        # Move the client's clock past the JWT's refresh point rather than wait for it.
        auth = client._core.auth
        real_clock = auth.clock
        auth.clock = lambda: real_clock() + TTL
        await asyncio.gather(*(client.list_projects() for _ in range(10)))
        assert request_log.count(REFRESH) == 2
        assert all(is_jwt(a) for a in request_log.authorizations("/projects"))
