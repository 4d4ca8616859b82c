"""Usage details (DESIGN.md §8) through the SDK, against the real server: ``tokens.usage``
in the sync and async clients — the last use, the last 5 distinct client addresses (seen
through ``trusted_proxies``) and 90 UTC days of counts — and who may read it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from conftest import Server, unique

from latchkey import Client, DailyUse, IpUse, NotFoundError, TokenUsage

WS1 = "Workspace 1"


def use_from(server: Server, token: str, ip: str) -> None:
    response = server.http("GET", "/api/v1/me", token=token, headers={"X-Forwarded-For": ip})
    assert response.status_code == 200, response.text


def test_usage_counts_addresses_and_days(make_server) -> None:
    # The test process is the trusted proxy; no background flush gets in the way.
    server = make_server({"": {"trusted_proxies": ["127.0.0.1"]}})  # top-level keys
    with server.client() as admin:
        created = admin.tokens.create(WS1, unique("used"), type="personal")
        fresh = admin.tokens.usage(created.id)
        assert isinstance(fresh, TokenUsage)
        assert fresh.last_used_at is None
        assert fresh.last_ips == []
        assert len(fresh.daily) == 90 and fresh.total == 0

        for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.1", "2001:db8::5"]:
            use_from(server, created.token, ip)
        usage = admin.tokens.usage(created.id)
        assert usage.total == 4
        assert {u.ip for u in usage.last_ips} == {"198.51.100.1", "198.51.100.2", "2001:db8::5"}
        assert all(isinstance(u, IpUse) and u.last_seen_at.tzinfo for u in usage.last_ips)
        assert usage.last_used_at is not None
        assert datetime.now(timezone.utc) - usage.last_used_at < timedelta(minutes=5)
        days = usage.daily
        assert all(isinstance(d, DailyUse) for d in days)
        assert days == sorted(days, key=lambda d: d.date)
        today = datetime.now(timezone.utc).date()
        assert days[-1].date in (today, today - timedelta(days=1))
        assert days[-1].date - days[0].date == timedelta(days=89)


def test_async_usage_and_who_may_read_it(server: Server) -> None:
    with server.client() as admin:
        created = admin.tokens.create(WS1, unique("async-used"), type="personal")
    use_from(server, created.token, "203.0.113.1")

    async def read() -> TokenUsage:
        async with server.async_client() as client:
            return await client.tokens.usage(created.id)

    usage = asyncio.run(read())
    assert usage.total == 1
    assert [u.ip for u in usage.last_ips] == ["127.0.0.1"], "the shared server trusts no proxy"

    # The token itself may read its own usage; a well-formed unknown id is not found.
    with Client(server.url, created.token) as own:
        assert own.tokens.usage(created.id).total >= 1
        with pytest.raises(NotFoundError):
            own.tokens.usage("00000000-0000-7000-8000-000000000000")
    # Another user's token is not visible: 404, as for the token itself.
    with server.client() as admin:
        password = "usage password 123"
        user = admin.users.create(unique("usage-mia"), password, "member")
        admin.members.put(WS1, user.id, "member")
    with Client(server.url, anonymous=True) as mia:
        mia.sign_in(user.username, password)
        with pytest.raises(NotFoundError):
            mia.tokens.usage(created.id)
    # Without credentials: 401.
    response = server.http("GET", f"/api/v1/tokens/{created.id}/usage")
    assert response.status_code == 401
