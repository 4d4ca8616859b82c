"""List results that walk every page when iterated, as stripe's and openai's SDKs do.

``for token in client.tokens.list("Workspace 1"):`` yields every token, fetching the next
page (``next_cursor``) when the current one is used up; ``.items`` and ``len()`` are the
first page only, and ``next_page()`` / ``iter_pages()`` go page by page. The async client's
list methods return an :class:`AsyncPaginator`: ``await`` it for the first page, or
``async for`` over it for every item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Generic,
    Iterator,
    Optional,
    TypeVar,
)

from ._http import Call
from ._models import Page

__all__ = [
    "SyncPage",
    "AsyncPage",
    "AsyncPaginator",
    "paginate_sync",
    "paginate_async",
    "SyncListMethod",
    "AsyncListMethod",
]

T = TypeVar("T")

#: Builds a list call for a cursor (``None``: the first page).
MakeCall = Callable[[Optional[str]], Call[Page[T]]]
#: A list method of :class:`~latchkey.Client` (for ``client.paginate``).
SyncListMethod = Callable[..., Page[T]]
#: A list method of :class:`~latchkey.AsyncClient` (for ``client.paginate``).
AsyncListMethod = Callable[..., Awaitable[Page[T]]]


def _moved_on(page: Page[Any], cursor: Optional[str]) -> bool:
    # A server that hands back the cursor it was given would loop forever.
    return bool(page.next_cursor) and page.next_cursor != cursor


@dataclass
class SyncPage(Page[T]):
    """One page of a list; iterating it yields every item of every page."""

    _fetch: Optional[Callable[[str], "SyncPage[T]"]] = field(
        default=None, repr=False, compare=False
    )
    _cursor: Optional[str] = field(default=None, repr=False, compare=False)

    def has_next_page(self) -> bool:
        """Whether another page follows."""
        return self._fetch is not None and _moved_on(self, self._cursor)

    def next_page(self) -> Optional["SyncPage[T]"]:
        """The next page, or ``None`` after the last."""
        if not self.has_next_page() or self._fetch is None or self.next_cursor is None:
            return None
        return self._fetch(self.next_cursor)

    def iter_pages(self) -> Iterator["SyncPage[T]"]:
        """This page and every page after it."""
        page: Optional[SyncPage[T]] = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.items


@dataclass
class AsyncPage(Page[T]):
    """One page of an async list; ``async for`` over it yields every item of every page
    (plain ``for`` stays on this page)."""

    _fetch: Optional[Callable[[str], Awaitable["AsyncPage[T]"]]] = field(
        default=None, repr=False, compare=False
    )
    _cursor: Optional[str] = field(default=None, repr=False, compare=False)

    def has_next_page(self) -> bool:
        """Whether another page follows."""
        return self._fetch is not None and _moved_on(self, self._cursor)

    async def next_page(self) -> Optional["AsyncPage[T]"]:
        """The next page, or ``None`` after the last."""
        if not self.has_next_page() or self._fetch is None or self.next_cursor is None:
            return None
        return await self._fetch(self.next_cursor)

    async def iter_pages(self) -> AsyncIterator["AsyncPage[T]"]:
        """This page and every page after it."""
        page: Optional[AsyncPage[T]] = self
        while page is not None:
            yield page
            page = await page.next_page()

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.items:
                yield item


class AsyncPaginator(Generic[T]):
    """What an async list method returns: ``await`` it for the first :class:`AsyncPage`,
    ``async for`` over it for every item of every page."""

    def __init__(
        self, fetch: Callable[[Optional[str]], Awaitable[AsyncPage[T]]], cursor: Optional[str]
    ) -> None:
        self._fetch = fetch
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, AsyncPage[T]]:
        return self._fetch(self._cursor).__await__()

    async def __aiter__(self) -> AsyncIterator[T]:
        page = await self
        async for item in page:
            yield item


def paginate_sync(
    call: Callable[[Call[Page[T]]], Page[T]], make: MakeCall[T], cursor: Optional[str]
) -> SyncPage[T]:
    """Fetches the page at ``cursor`` and returns it able to fetch the ones after it."""

    def fetch(at: Optional[str]) -> SyncPage[T]:
        page = call(make(at))
        return SyncPage(page.items, page.next_cursor, _fetch=fetch, _cursor=at)

    return fetch(cursor)


def paginate_async(
    call: Callable[[Call[Page[T]]], Awaitable[Page[T]]], make: MakeCall[T], cursor: Optional[str]
) -> AsyncPaginator[T]:
    """A paginator starting at ``cursor`` (nothing is fetched until it is awaited or
    iterated)."""

    async def fetch(at: Optional[str]) -> AsyncPage[T]:
        page = await call(make(at))
        return AsyncPage(page.items, page.next_cursor, _fetch=fetch, _cursor=at)

    return AsyncPaginator(fetch, cursor)
