"""The token inventory, bulk revoke and recoverable secrets (DESIGN.md §8) through the SDK,
against the real server: every filter with pagination, the CSV export, what a bulk revoke
skips and why, reveal and ``recoverable_types``, and a signed-in client whose own httpx
client keeps the session cookie in its jar."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator, List

import httpx
import pytest
from conftest import Server, unique

from latchkey import (
    AsyncClient,
    BulkRevokeResult,
    Client,
    ConflictError,
    CreatedToken,
    NotFoundError,
    SkippedToken,
    Token,
    ValidationError,
)

WS1 = "Workspace 1"
PASSWORD = "inventory password 123"


@pytest.fixture
def console(server: Server) -> Iterator[Client]:
    """The org owner's signed-in session: an org admin sees the whole org's inventory."""
    with Client(server.url, anonymous=True) as client:
        client.sign_in("admin", server.admin_password)
        yield client


class Tagged:
    """Creates tokens named ``<tag>-<name>`` (one tag per test, so ``q=tag`` finds only
    them); the fixture deletes them afterwards."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.tag = unique("inv")
        self.made: List[CreatedToken] = []

    def __call__(self, name: str, **kwargs: Any) -> CreatedToken:
        created = self.client.tokens.create(WS1, f"{self.tag}-{name}", **kwargs)
        self.made.append(created)
        return created


@pytest.fixture
def tagged(console: Client) -> Iterator[Tagged]:
    made = Tagged(console)
    yield made
    for token in made.made:
        console.tokens.delete(token.id)


def wait_until_used(client: Client, token_id: str) -> None:
    """Last-used times are written in batches (``last_used_flush_secs``, 5 s by default):
    waits for the batch that holds this token's use, 60 s at most."""
    deadline = time.monotonic() + 60
    while client.tokens.get(token_id).last_used_at is None:
        assert time.monotonic() < deadline, "the last-used time was never written"
        time.sleep(0.2)


def names(tokens: Iterable[Token]) -> List[str]:
    return sorted(t.name.rsplit("-", 1)[-1] for t in tokens)


def test_every_filter_with_pagination(
    console: Client, anonymous_verify: Client, tagged: Tagged
) -> None:
    tag = tagged.tag
    a = tagged("a", type="client")
    tagged("b", type="client", expires_in_days=3)
    c = tagged("c")
    d = tagged("d", type="frontend")
    tagged("e", type="client", expires_in_days=300)
    with Client(anonymous_verify.base_url, c.token, jwt_exchange=False) as as_c:
        as_c.me()  # c is used now
    console.tokens.revoke(d.id)
    wait_until_used(console, c.id)

    # Every page, two at a time: all five, each once.
    page = console.tokens.inventory(q=tag, limit=2)
    assert len(page.items) == 2 and page.next_cursor
    assert names(page) == ["a", "b", "c", "d", "e"]
    # Name contains, without case.
    assert names(console.tokens.inventory(q=tag.upper())) == ["a", "b", "c", "d", "e"]
    assert names(console.tokens.inventory(q=tag, type="client", limit=1)) == ["a", "b", "e"]
    assert names(console.tokens.inventory(q=tag, state="revoked")) == ["d"]
    assert names(console.tokens.inventory(q=tag, state="active", type="frontend")) == []
    assert names(console.tokens.inventory(q=tag, workspace=WS1)) == ["a", "b", "c", "d", "e"]
    assert names(console.tokens.inventory(q=tag, owner="admin", type="personal")) == ["c"]
    soon = datetime.now(timezone.utc) + timedelta(days=10)
    assert names(console.tokens.inventory(q=tag, type="client", expires_before=soon)) == ["b"]
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert names(console.tokens.inventory(q=tag, created_before=tomorrow)) == [
        "a",
        "b",
        "c",
        "d",
        "e",
    ]
    assert names(console.tokens.inventory(q=tag, created_before="2000-01-01")) == []
    assert names(console.tokens.inventory(q=tag, never_used=False)) == ["c"]
    assert names(console.tokens.inventory(q=tag, never_used=True, limit=1)) == [
        "a",
        "b",
        "d",
        "e",
    ]
    in_a_minute = datetime.now(timezone.utc) + timedelta(minutes=1)
    assert names(console.tokens.inventory(q=tag, last_used_before=in_a_minute)) == ["c"]
    # The paginate helper walks the same pages.
    assert {t.id for t in console.paginate(console.tokens.inventory, q=tag, limit=2)} >= {a.id}

    with pytest.raises(ValidationError):
        console.tokens.inventory(q=tag, created_before="not a date")


def test_csv_export_has_every_match_and_no_secret(console: Client, tagged: Tagged) -> None:
    tag = tagged.tag
    made = [tagged(str(n), type="client") for n in range(3)]
    text = console.tokens.export_csv(q=tag, type="client")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["id"] for r in rows) == sorted(t.id for t in made)
    assert all(t.token not in text for t in made)
    assert console.tokens.export_csv(q=tag, type="admin").strip().count("\n") == 0


def test_bulk_revoke_answers_every_id(console: Client, server: Server, tagged: Tagged) -> None:
    fresh = tagged("fresh", type="client")
    old = tagged("old", type="client")
    console.tokens.revoke(old.id)
    unknown = "00000000-0000-7000-8000-000000000000"

    result = console.tokens.bulk_revoke([fresh.id, old.id, unknown, fresh.id])
    assert isinstance(result, BulkRevokeResult)
    assert result.revoked == [fresh.id]
    assert result.skipped == [
        SkippedToken(old.id, "already_revoked"),
        SkippedToken(unknown, "not_found"),
        SkippedToken(fresh.id, "duplicate"),
    ]
    assert console.tokens.get(fresh.id).state == "revoked"

    with pytest.raises(ValidationError):
        console.tokens.bulk_revoke([])
    with pytest.raises(ValidationError):
        console.tokens.bulk_revoke([unknown] * 1001)


def test_a_member_sees_and_revokes_only_what_they_may(
    console: Client, server: Server, tagged: Tagged
) -> None:
    tag = tagged.tag
    username = unique("member")
    user = console.users.create(username, PASSWORD, role="member")
    console.members.put(WS1, user.id, "member")
    try:
        client_token = tagged("shared", type="client")
        admins_own = tagged("private")
        with Client(server.url, anonymous=True) as member:
            member.sign_in(username, PASSWORD)
            seen = [t.id for t in member.tokens.inventory(q=tag)]
            assert client_token.id in seen and admins_own.id not in seen
            result = member.tokens.bulk_revoke([client_token.id, admins_own.id])
            assert result.revoked == []
            assert result.skipped == [
                SkippedToken(client_token.id, "forbidden"),
                SkippedToken(admins_own.id, "not_found"),
            ]
        assert console.tokens.get(client_token.id).state == "active"
    finally:
        console.members.remove(WS1, user.id)


def test_reveal_a_recoverable_token(make_server: Callable[..., Server]) -> None:
    server = make_server()
    with Client(server.url, anonymous=True) as console:
        console.sign_in("admin", server.admin_password)
        assert console.token_settings().recoverable_types == []
        kept_before = console.tokens.create(WS1, "before", type="client")
        assert kept_before.recoverable is False
        with pytest.raises(ConflictError) as err:
            console.tokens.reveal(kept_before.id)
        assert err.value.code == "not_recoverable"

        settings = console.update_token_settings(recoverable_types=["client"])
        assert settings.recoverable_types == ["client"]
        kept = console.tokens.create(WS1, "kept", type="client")
        assert kept.recoverable and console.tokens.get(kept.id).recoverable
        assert console.tokens.reveal(kept.id) == kept.token
        rotated = console.tokens.rotate(kept.id)
        assert console.tokens.reveal(kept.id) == rotated.token
        events = console.audit_events(token=kept.id, action="token.revealed")
        assert len(list(events)) == 2

        # Someone who may not see it cannot reveal it.
        username = unique("outsider")
        console.users.create(username, PASSWORD, role="member")
        with Client(server.url, anonymous=True) as outsider:
            outsider.sign_in(username, PASSWORD)
            with pytest.raises(NotFoundError):
                outsider.tokens.reveal(kept.id)

        # Taking the type off erases what was kept; the token keeps working.
        assert console.update_token_settings(recoverable_types=[]).recoverable_types == []
        assert console.tokens.get(kept.id).recoverable is False
        with pytest.raises(ConflictError):
            console.tokens.reveal(kept.id)
        assert console.verify(rotated.token).valid


@pytest.mark.anyio
async def test_async_inventory_bulk_revoke_and_csv(server: Server) -> None:
    async with AsyncClient(server.url, anonymous=True) as console:
        await console.sign_in("admin", server.admin_password)
        tag = unique("async-inv")
        made = [await console.tokens.create(WS1, f"{tag}-{n}", type="client") for n in range(3)]
        try:
            seen = [t.id async for t in console.tokens.inventory(q=tag, limit=1)]
            assert sorted(seen) == sorted(t.id for t in made)
            first = await console.tokens.inventory(q=tag, limit=2)
            assert len(first.items) == 2
            assert made[0].id in await console.tokens.export_csv(q=tag)
            result = await console.tokens.bulk_revoke([t.id for t in made])
            assert result.revoked == [t.id for t in made] and result.skipped == []
        finally:
            for token in made:
                await console.tokens.delete(token.id)


def test_signed_in_with_own_http_client_keeps_working(server: Server) -> None:
    # The caller's httpx client keeps the session cookie of the sign-in answer in its jar:
    # a public route (verify) must not carry it without an Origin (refused as cross-site),
    # and writes still name their origin.
    created = server.client().tokens.create(WS1, unique("jar"), type="client")
    with httpx.Client() as http, Client(server.url, anonymous=True, http_client=http) as c:
        c.sign_in("admin", server.admin_password)
        assert "latchkey_session" in http.cookies
        assert c.verify(created.token).valid
        assert c.tokens.revoke(created.id).state == "revoked"
        assert c.tokens.bulk_revoke([created.id]).skipped[0].reason == "already_revoked"
        c.tokens.delete(created.id)


@pytest.fixture
def anonymous_verify(server: Server) -> Iterator[Client]:
    with Client(server.url, anonymous=True) as client:
        yield client
