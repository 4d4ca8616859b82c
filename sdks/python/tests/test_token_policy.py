"""Verify-time policy per token (DESIGN.md §8) through the SDK, against the real server:
metadata, allowed IPs, rate limits, usage credits with refill, on create and update, as
verify and introspection see them, and the errors for bad input and missing rights."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from conftest import Server, unique

from latchkey import (
    NOT_GIVEN,
    AsyncClient,
    Client,
    NotFoundError,
    PermissionDeniedError,
    RateLimit,
    RateLimited,
    RateLimitError,
    Refill,
    ValidationError,
)

WS1 = "Workspace 1"
#: A day: the window boundary (00:00 UTC) is the only time a test's uses could straddle two.
DAY = 86_400


@pytest.fixture
def policy_route(server: Server) -> None:
    response = server.http(
        "PATCH",
        f"/api/v1/tokens/{'0' * 8}-0000-7000-8000-000000000000",
        server.admin_token,
        json={},
    )
    if response.status_code == 405:
        pytest.fail("the server has no PATCH /api/v1/tokens/{id}", pytrace=False)


@pytest.fixture
def anonymous(server: Server) -> Iterator[Client]:
    with Client(server.url, anonymous=True, max_retries=0) as client:
        yield client


def test_create_with_every_field_and_read_it_back(
    admin: Client, anonymous: Client, policy_route: None
) -> None:
    metadata = {"plan": "pro", "customer": {"id": 42, "tags": ["a", "b"]}}
    created = admin.tokens.create(
        WS1,
        unique("partner"),
        type="client",
        metadata=metadata,
        allowed_ips=["203.0.113.0/24", "2001:db8::/32"],
        rate_limit=RateLimit(limit=1000, window_secs=60),
        remaining_uses=500,
        refill={"amount": 500, "interval": "monthly"},
    )
    try:
        assert created.metadata == metadata
        assert created.allowed_ips == ["203.0.113.0/24", "2001:db8::/32"]
        assert created.rate_limit == RateLimit(1000, 60)
        assert created.remaining_uses == 500
        assert created.refill == Refill(500, "monthly")
        fetched = admin.tokens.get(created.id)
        assert fetched == created.without_secret()
    finally:
        admin.tokens.delete(created.id)


def test_a_token_without_policy_has_none(admin: Client, anonymous: Client) -> None:
    created = admin.tokens.create(WS1, unique("plain"), type="client")
    try:
        assert (
            created.metadata,
            created.allowed_ips,
            created.rate_limit,
            created.remaining_uses,
            created.refill,
        ) == (None, None, None, None, None)
        answer = anonymous.verify(created.token, ip="198.51.100.1")
        assert answer.valid and answer.metadata is None and answer.rate_limit is None
    finally:
        admin.tokens.delete(created.id)


def test_update_changes_only_what_is_given(admin: Client, policy_route: None) -> None:
    created = admin.tokens.create(
        WS1,
        unique("updated"),
        type="client",
        metadata={"plan": "free"},
        allowed_ips=["10.0.0.0/8"],
        rate_limit=RateLimit(10, 60),
    )
    try:
        changed = admin.tokens.update(created.id, metadata={"plan": "pro"}, remaining_uses=7)
        assert changed.metadata == {"plan": "pro"} and changed.remaining_uses == 7
        assert changed.allowed_ips == ["10.0.0.0/8"] and changed.rate_limit == RateLimit(10, 60)

        cleared = admin.tokens.update(
            created.id, allowed_ips=None, rate_limit=None, refill=Refill(7, "daily")
        )
        assert cleared.allowed_ips is None and cleared.rate_limit is None
        assert cleared.refill == Refill(7, "daily") and cleared.metadata == {"plan": "pro"}

        unlimited = admin.tokens.update(created.id, remaining_uses=None, metadata=NOT_GIVEN)
        assert unlimited.remaining_uses is None and unlimited.refill is None
        assert admin.tokens.get(created.id) == unlimited
    finally:
        admin.tokens.delete(created.id)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": {"blob": "x" * 5000}}, "metadata"),
        ({"allowed_ips": ["10.0.0.0/33"]}, "allowed_ips"),
        ({"allowed_ips": ["not-an-ip"]}, "allowed_ips"),
        ({"rate_limit": {"limit": 0, "window_secs": 60}}, "rate_limit.limit"),
        ({"rate_limit": {"limit": 5, "window_secs": DAY + 1}}, "rate_limit.window_secs"),
        ({"remaining_uses": -1}, "remaining_uses"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(
    admin: Client, policy_route: None, fields: Any, field: str
) -> None:
    name = unique("refused")
    with pytest.raises(ValidationError) as on_create:
        admin.tokens.create(WS1, name, type="client", **fields)
    assert (on_create.value.status, on_create.value.field) == (422, field)
    assert name not in [t.name for t in admin.tokens.list(WS1)]

    token = admin.tokens.create(WS1, unique("kept"), type="client", metadata={"v": 1})
    try:
        with pytest.raises(ValidationError) as on_update:
            admin.tokens.update(token.id, **fields)
        assert on_update.value.field == field
        assert admin.tokens.get(token.id) == token.without_secret()
    finally:
        admin.tokens.delete(token.id)


def test_a_viewer_may_not_change_a_tokens_policy(admin: Client, server: Server) -> None:
    username = unique("viewer")
    user = admin.users.create(username, "viewer password 123456", role="member")
    admin.members.put(WS1, user.id, "viewer")
    token = admin.tokens.create(WS1, unique("guarded"), type="client", metadata={"v": 1})
    try:
        with Client(server.url, anonymous=True) as viewer:
            viewer.sign_in(username, "viewer password 123456")
            with pytest.raises((PermissionDeniedError, NotFoundError)):
                viewer.tokens.update(token.id, metadata={"v": 2})
        assert admin.tokens.get(token.id).metadata == {"v": 1}
    finally:
        admin.tokens.delete(token.id)
        admin.members.remove(WS1, user.id)


@pytest.mark.anyio
async def test_async_client_create_update_verify(server: Server, policy_route: None) -> None:
    async with server.async_client() as admin, AsyncClient(server.url, anonymous=True) as anon:
        created = await admin.tokens.create(
            WS1, unique("async"), type="client", metadata={"n": 1}, allowed_ips=["127.0.0.1"]
        )
        try:
            assert created.allowed_ips == ["127.0.0.1/32"]
            answer = await anon.verify(created.token, ip="127.0.0.1")
            assert answer.valid and answer.metadata == {"n": 1}
            changed = await admin.tokens.update(created.id, allowed_ips=None, metadata={"n": 2})
            assert changed.allowed_ips is None and changed.metadata == {"n": 2}
            assert (await anon.verify(created.token)).metadata == {"n": 2}
        finally:
            await admin.tokens.delete(created.id)


# --------------------------------------------------------------------------- enforcement


def test_verify_and_introspect_check_the_address_and_return_metadata(
    admin: Client, anonymous: Client
) -> None:
    metadata = {"plan": "pro", "customer": {"id": 42}}
    created = admin.tokens.create(
        WS1,
        unique("addressed"),
        type="client",
        metadata=metadata,
        allowed_ips=["203.0.113.0/24", "2001:db8::/32"],
    )
    try:
        # Verify from an allowed address: valid, with the metadata.
        ok = anonymous.verify(created.token, ip="203.0.113.9")
        assert ok.valid and ok.metadata == metadata
        assert ok.token is not None and ok.token.id == created.id
        assert anonymous.verify(created.token, ip="2001:db8::1").valid
        # From elsewhere, or without saying where: refused with the reason.
        assert anonymous.verify(created.token, ip="198.51.100.1").reason == "ip_not_allowed"
        assert anonymous.verify(created.token).reason == "ip_not_allowed"
        seen = admin.introspect(created.token, ip="203.0.113.10")
        assert seen.active and seen.metadata == metadata
        assert not admin.introspect(created.token, ip="198.51.100.1")
    finally:
        admin.tokens.delete(created.id)


def test_over_the_rate_limit(admin: Client, server: Server, anonymous: Client) -> None:
    created = admin.tokens.create(
        WS1, unique("limited"), type="client", rate_limit=RateLimit(limit=2, window_secs=DAY)
    )
    try:
        with Client(server.url, created.token, max_retries=0) as api:
            api.list_projects()
            api.list_projects()
            with pytest.raises(RateLimited) as over:
                api.list_projects()
        err = over.value
        assert isinstance(err, RateLimitError) and (err.status, err.code) == (429, "rate_limited")
        assert err.retry_after is not None and 0 < err.retry_after <= DAY
        assert err.rate_limit is not None
        assert (err.rate_limit.limit, err.rate_limit.remaining) == (2, 0)
        assert err.rate_limit.reset is not None and 0 < err.rate_limit.reset <= DAY

        refused = anonymous.verify(created.token)
        assert (refused.valid, refused.reason) == (False, "rate_limited")
        assert refused.retry_after is not None and refused.retry_after > 0
        assert refused.rate_limit is not None and refused.rate_limit.remaining == 0
    finally:
        admin.tokens.delete(created.id)


def test_usage_credits_run_out(admin: Client, anonymous: Client) -> None:
    created = admin.tokens.create(WS1, unique("credits"), type="client", remaining_uses=2)
    try:
        assert anonymous.verify(created.token).valid
        assert anonymous.verify(created.token).valid
        assert anonymous.verify(created.token).reason == "usage_exceeded"
        assert admin.tokens.get(created.id).remaining_uses == 0
        # More uses from now on.
        assert admin.tokens.update(created.id, remaining_uses=1).remaining_uses == 1
        assert anonymous.verify(created.token).valid
        assert anonymous.verify(created.token).reason == "usage_exceeded"
    finally:
        admin.tokens.delete(created.id)
