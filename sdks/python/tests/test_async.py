"""AsyncClient against the real server: the same surface and rules as Client."""

from __future__ import annotations

import asyncio

import pytest
from conftest import RequestLog, Server, make_token, unique

from latchkey import (
    AsyncClient,
    AuthenticationError,
    ConflictError,
    CreatedToken,
    NotFoundError,
    Project,
    RateLimitError,
    Token,
    ValidationError,
)

pytestmark = pytest.mark.anyio
WS1 = "Workspace 1"


async def test_ri_platform_sample_async(server: Server) -> None:
    CLUSTER_URL, API_TOKEN = server.url, server.admin_token
    async with AsyncClient(CLUSTER_URL, API_TOKEN) as client:
        project = await client.create_project(
            name="Fraud Demo", description="This is an Onboarding Demo"
        )
        assert isinstance(project, Project) and project.description == "This is an Onboarding Demo"
        ids = [p.id async for p in client.paginate(client.list_projects, limit=1)]
        assert project.id in ids


async def test_async_token_lifecycle(server: Server) -> None:
    async with server.async_client() as client:
        me = await client.me()
        assert me.username == "admin"
        assert WS1 in [w.name for w in await client.workspaces()]
        created = await client.tokens.create(WS1, unique("async"), expires_in_days=7)
        assert isinstance(created, CreatedToken) and created.token not in repr(created)
        assert type(await client.tokens.get(created.id)) is Token
        assert created.id in [t.id for t in await client.tokens.list(WS1, limit=200)]
        assert created.id in [t.id async for t in client.paginate(client.tokens.list)]
        assert (await client.verify(created.token)).valid
        assert (await client.tokens.revoke(created.id)).state == "revoked"
        assert (await client.verify(created.token)).reason == "revoked"
        assert (await client.tokens.restore(created.id)).state == "active"
        rotated = await client.tokens.rotate(
            created.id, grace_seconds=0, idempotency_key=unique("k")
        )
        assert rotated.id == created.id and rotated.token != created.token
        assert (await client.verify(rotated.token)).valid
        await client.tokens.delete(created.id)
        with pytest.raises(NotFoundError) as err:
            await client.tokens.get(created.id)
        assert err.value.code == "not_found"
        events = await client.audit_events(token=created.id)
        assert "token.created" in [e.action for e in events]


async def test_async_errors_and_sessions(server: Server) -> None:
    async with server.async_client() as client:
        with pytest.raises(ValidationError) as err:
            await client.tokens.create(WS1, "")
        assert err.value.field == "name"
    async with AsyncClient(server.url, make_token()) as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.me()
    async with AsyncClient(server.url, anonymous=True) as console:
        await console.sign_in("admin", server.admin_password)
        assert console.auth_mode == "session"
        name = unique("Async WS")
        ws = await console.create_workspace(name)
        assert (await console.workspace(name)).id == ws.id
        with pytest.raises(ConflictError):
            await console.create_workspace(name)
        bob = await console.users.create(unique("abob"), "bob password 123")
        assert (await console.members.put(name, bob.id, "viewer")).role == "viewer"
        assert bob.id in [m.user_id for m in await console.members.list(name)]
        await console.members.remove(name, bob.id)
        assert (await console.token_settings()).token_creators == "members"
        svc = await console.users.create_service_account(unique("asvc"))
        assert svc.kind == "service"
        assert svc.id in [u.id for u in await console.users.list(kind="service")]
        await console.sign_out()
        with pytest.raises(AuthenticationError):
            await console.me()


async def test_async_idempotent_rotate_returns_the_same_secret(server: Server) -> None:
    async with server.async_client() as client:
        created = await client.tokens.create(WS1, unique("idem"), type="client")
        key = unique("rotate")
        first, second = await asyncio.gather(
            client.tokens.rotate(created.id, 60, key), client.tokens.rotate(created.id, 60, key)
        )
        third = await client.tokens.rotate(created.id, 60, key)
        assert first.token == second.token == third.token != created.token
        with pytest.raises(ValidationError):
            await client.tokens.rotate(created.id, 5, key)  # same key, other body → 422
        await client.tokens.delete(created.id)


async def test_async_429_honours_retry_after(make_server, request_log: RequestLog) -> None:
    server = make_server({"throttle": {"failed_token_checks": 1, "window_secs": 3}})
    stranger_token = make_token("lkc")
    async with AsyncClient(server.url, stranger_token, max_retries=0) as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.list_projects()
    # Valid tokens from the throttled address still work: only failures are held back.
    async with server.async_client(jwt_exchange=False) as admin:
        assert (await admin.me()).username == "admin"
    async with AsyncClient(
        server.url, stranger_token, jwt_exchange=False, http_client=request_log.async_http_client()
    ) as client:
        with pytest.raises(RateLimitError):
            await client.create_project("not retried")
        assert len(request_log.requests) == 1
        with pytest.raises(AuthenticationError):
            await client.me()
        assert [r.status_code for r in request_log.responses][-1] == 401
        assert request_log.responses[1].status_code == 429
