"""An in-memory channel layer that other threads of the same process may send to.

The embedded demo runs ingest and decoding in threads beside the ASGI server. Channels'
``InMemoryChannelLayer`` keeps asyncio queues that belong to the server's event loop, and
waking them from another thread's loop is not thread-safe, so sends from a foreign loop
are handed to the server's loop instead. Production uses the Redis channel layer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._home_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel: str) -> dict:
        self._home_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def group_send(self, group: str, message: dict) -> None:
        await self._on_home_loop(super().group_send(group, message))

    async def send(self, channel: str, message: dict) -> None:
        await self._on_home_loop(super().send(channel, message))

    async def _on_home_loop(self, coro: Any) -> None:
        home = self._home_loop
        if home is None or home.is_closed() or home is asyncio.get_running_loop():
            await coro
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, home))
