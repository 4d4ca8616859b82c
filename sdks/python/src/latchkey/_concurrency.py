"""The few primitives where the async and the sync client really differ.

``_async_client.py`` is the source; ``scripts/gen_sync.py`` writes ``_client.py`` from it by
renaming tokens (``AsyncLock`` → ``SyncLock``, ``async_sleep`` → ``sync_sleep``, ...). Every
name used in the async client that has no sync twin spelled that way lives here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType
from typing import Optional, Type

__all__ = ["AsyncLock", "SyncLock", "async_sleep", "sync_sleep"]


class AsyncLock:
    """An ``asyncio.Lock`` made on first use, so a client can be built outside an event loop
    (on Python 3.9 a lock binds to the loop current at its creation)."""

    def __init__(self) -> None:
        self._lock: Optional[asyncio.Lock] = None

    async def __aenter__(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        await self._lock.acquire()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        assert self._lock is not None
        self._lock.release()


class SyncLock:
    """A ``threading.Lock`` with the interface of :class:`AsyncLock`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._lock.release()


async def async_sleep(seconds: float) -> None:
    """Waits without blocking the event loop."""
    await asyncio.sleep(seconds)


def sync_sleep(seconds: float) -> None:
    """Blocks the thread for ``seconds``."""
    time.sleep(seconds)
