"""Iterating a list result walks every page (sync and async), against the real server."""

from __future__ import annotations

import pytest
from conftest import Server, unique

from latchkey import AsyncClient, AsyncPage, Client, SyncPage

WS1 = "Workspace 1"


@pytest.fixture
def five_tokens(admin: Client) -> list:
    prefix = unique("paged")
    created = [admin.tokens.create(WS1, f"{prefix}-{i}") for i in range(5)]
    yield [c.id for c in created]
    for c in created:
        admin.tokens.delete(c.id)


def test_iterating_a_list_walks_every_page(admin: Client, five_tokens: list) -> None:
    first = admin.tokens.list(WS1, limit=2)
    assert isinstance(first, SyncPage)
    assert len(first.items) == 2 and first.has_next_page()
    every = [t.id for t in first]
    assert len(every) > 2 and set(five_tokens) <= set(every)
    assert len(every) == len(set(every))  # no page twice
    # The same as walking the cursors by hand, and as paginate().
    by_pages = [t.id for page in first.iter_pages() for t in page.items]
    assert every == by_pages == [t.id for t in admin.paginate(admin.tokens.list, WS1, limit=2)]
    # A page fetched at a cursor goes on from there.
    second = first.next_page()
    assert second is not None and second.items[0].id == every[2]
    assert [t.id for t in second] == every[2:]


@pytest.mark.anyio
async def test_async_for_walks_every_page(server: Server, five_tokens: list) -> None:
    async with AsyncClient(server.url, server.admin_token) as client:
        page = await client.tokens.list(WS1, limit=2)
        assert isinstance(page, AsyncPage) and len(page.items) == 2
        every = [t.id async for t in client.tokens.list(WS1, limit=2)]
        assert set(five_tokens) <= set(every) and len(every) == len(set(every))
        from_page = [t.id async for t in page]
        assert from_page == every
        assert [t.id for t in page] == every[:2]  # plain `for` stays on the page
