"""A per-process read-through cache of channel settings in front of the store.

The Slack adapter reads a channel's settings (its time zone, whether it is watched) for *every* slash
command and every channel message. On SQLite that read is a transaction on the store's one connection,
through aiosqlite's worker thread: under concurrent requests they queue on that connection and on the
GIL, and the benchmark showed it cost more than everything else a slash command does together
(``bench/RESULTS.md``). Settings change rarely (``/china-filing timezone``, ``watch on|off``,
uninstalling), so :class:`CachedSettingsStore` keeps them for :data:`TTL_SECONDS`:

* a write made through this process (the setters below) invalidates the entry at once;
* a write made by another replica is seen within :data:`TTL_SECONDS` at most;
* concurrent misses for one channel share one query, and the channels read in the same turn of the event
  loop are read together, in one query (``get_channel_settings_many``);
* an entry read in the last :data:`REFRESH_AHEAD` (a fraction) of its life is refreshed in the background (the
  reader gets the cached value at once), so a channel in use never expires under its requests: before
  this, every channel cached in the same burst expired in the same instant and all their requests
  queued on the database together (a 0.4-1.4 s stall every 5 s in the never-repeated benchmark). Those
  refreshes are batched too: one read per channel, each a trip to aiosqlite's thread that waits for the
  GIL behind a busy event loop, still left some channels expired before their turn came (~1 s stalls on
  a loaded machine).

Everything else is delegated to the wrapped store unchanged; ``unwrap()`` gives the store back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

TTL_SECONDS = 5.0
REFRESH_AHEAD = 0.5  # the second half of an entry's life: a read then refreshes it in the background
MAX_ENTRIES = 50_000  # channels; past it the oldest half is dropped (bounded memory on huge installs)


class CachedSettingsStore:
    """The store, with ``get_channel_settings`` cached and the settings writers invalidating it."""

    def __init__(self, store: Any, *, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._loading: dict[tuple[str, str], asyncio.Future] = {}
        self._generation = 0  # bumped by every invalidation: a read that raced a write is not cached
        self._refreshing: set[asyncio.Task] = set()  # batched reads in flight (referenced until done)
        # keys for the next batch -> (the generation when asked, the future its readers wait on)
        self._pending: dict[tuple[str, str], tuple[int, asyncio.Future]] = {}
        self._flush: asyncio.Handle | None = None
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def unwrap(self) -> Any:
        return self._store

    def cached_channel_settings(self, platform: str, channel: str) -> Any | None:
        """This process's fresh copy of the settings, or None: never waits on the database."""
        entry = self._entries.get((platform, channel))
        return entry[1] if entry is not None and entry[0] > self._clock() else None

    async def get_channel_settings(self, platform: str, channel: str) -> Any:
        key = (platform, channel)
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and entry[0] > now:
            self.hits += 1
            if entry[0] - now < self._ttl * REFRESH_AHEAD and key not in self._loading:
                self._load(key)  # in the background: this reader has its answer
            return entry[1]
        loading = self._loading.get(key)
        if loading is not None:
            self.hits += 1
        else:
            self.misses += 1
            loading = self._load(key)
        return await asyncio.shield(loading)

    def _load(self, key: tuple[str, str]) -> asyncio.Future:
        """Read ``key`` with the other channels asked for in the same turn of the event loop: one query for
        them all (``get_channel_settings_many``), not one round trip each. A channel's readers share its
        future; the value is cached unless a write invalidated the cache meanwhile."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._loading[key] = future
        self._pending[key] = (self._generation, future)
        if self._flush is None:
            self._flush = loop.call_soon(self._start_batch)
        return future

    def _start_batch(self) -> None:
        self._flush = None
        batch, self._pending = self._pending, {}
        task = asyncio.ensure_future(self._read_batch(batch))
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _read_batch(self, batch: dict[tuple[str, str], tuple[int, asyncio.Future]]) -> None:
        by_platform: dict[str, list[str]] = {}
        for platform, channel in batch:
            by_platform.setdefault(platform, []).append(channel)
        try:
            for platform, channels in by_platform.items():
                try:
                    values = await self._read_many(platform, channels)
                    found = [(channel, values[channel]) for channel in channels]
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # not cached: waiters re-raise it, the next reader reads again
                    for channel in channels:
                        self._settle((platform, channel), batch[(platform, channel)][1], exc)
                    continue
                for channel, value in found:
                    key = (platform, channel)
                    generation, future = batch[key]
                    if generation == self._generation:
                        if len(self._entries) >= MAX_ENTRIES:
                            for old in list(self._entries)[: MAX_ENTRIES // 2]:
                                del self._entries[old]
                        self._entries[key] = (self._clock() + self._ttl, value)
                    self._settle(key, future, value)
        finally:
            for key, (_, future) in batch.items():  # not answered (cancelled at shutdown): waiters see that
                self._settle(key, future, None, cancelled=True)

    async def _read_many(self, platform: str, channels: list[str]) -> dict[str, Any]:
        many = getattr(self._store, "get_channel_settings_many", None)
        if many is not None:
            return await many(platform, channels)
        values = await asyncio.gather(*(self._store.get_channel_settings(platform, c) for c in channels))
        return dict(zip(channels, values, strict=True))

    def _settle(self, key: tuple[str, str], future: asyncio.Future, value: Any, *, cancelled: bool = False) -> None:
        """Answer this batch's future for ``key`` (once), and forget it as the key's read in flight."""
        if self._loading.get(key) is future:
            del self._loading[key]
        if future.done():
            return
        if cancelled:
            future.cancel()
        elif isinstance(value, BaseException):
            future.set_exception(value)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
        else:
            future.set_result(value)

    def invalidate(self, platform: str | None = None, channel: str | None = None) -> None:
        """Forget one channel, one platform's channels, or everything."""
        self._generation += 1
        if platform is None:
            self._entries.clear()
        elif channel is None:
            for key in [k for k in self._entries if k[0] == platform]:
                del self._entries[key]
        else:
            self._entries.pop((platform, channel), None)

    async def set_channel_timezone(self, platform: str, workspace: str | None, channel: str, tz: str) -> None:
        try:
            await self._store.set_channel_timezone(platform, workspace, channel, tz)
        finally:
            self.invalidate(platform, channel)

    async def set_channel_language(self, platform: str, workspace: str | None, channel: str, language: str) -> None:
        try:
            await self._store.set_channel_language(platform, workspace, channel, language)
        finally:
            self.invalidate(platform, channel)

    async def set_channel_watch(self, platform: str, workspace: str | None, channel: str, on: bool) -> None:
        try:
            await self._store.set_channel_watch(platform, workspace, channel, on)
        finally:
            self.invalidate(platform, channel)

    async def delete_workspace(self, platform: str, workspace: str) -> None:
        try:
            await self._store.delete_workspace(platform, workspace)
        finally:
            self.invalidate(platform)  # which channels were the workspace's is the store's business
