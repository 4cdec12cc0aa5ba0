"""Operations: the channel settings cache in front of the store (a channel's timezone, language, watch): read
once, its own writes seen at once, another replica's within the TTL, concurrent misses sharing one read, failures
and reads racing a write not cached; and, over HTTP, a timezone set in Slack applying to the next command.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from slack_server import FakeSlack, SlackSender, load_fixture

from bot.store import Store
from handlers import Desk, Request
from tests.test_ops import SECRET, serving, slack_settings

# ----------------------------------------------------------------------------- channel settings cache


class CountingStore:
    """Just enough of a store to count reads and play another replica's writes."""

    def __init__(self) -> None:
        from bot.store import ChannelSettings

        self.settings = {("slack", "C1"): ChannelSettings("slack", "C1")}
        self.reads = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def get_channel_settings(self, platform: str, channel: str):
        from bot.store import ChannelSettings

        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("database down")
        return self.settings.get((platform, channel), ChannelSettings(platform, channel))

    async def set_channel_timezone(self, platform, workspace, channel, tz) -> None:
        from bot.store import ChannelSettings

        self.settings[(platform, channel)] = ChannelSettings(platform, channel, workspace, tz)

    async def set_channel_watch(self, platform, workspace, channel, on) -> None:
        from bot.store import ChannelSettings

        old = self.settings.get((platform, channel), ChannelSettings(platform, channel))
        self.settings[(platform, channel)] = ChannelSettings(platform, channel, workspace, old.timezone, on)

    async def delete_workspace(self, platform, workspace) -> None:
        self.settings.clear()

    async def ping(self) -> bool:
        return True


async def test_channel_settings_cache_reads_once_and_sees_its_own_writes_at_once():
    from bot.channel_cache import CachedSettingsStore

    raw = CountingStore()
    now = [0.0]
    cached = CachedSettingsStore(raw, ttl=5.0, clock=lambda: now[0])
    for _ in range(10):
        assert (await cached.get_channel_settings("slack", "C1")).timezone == "Asia/Shanghai"
    assert raw.reads == 1
    await cached.set_channel_timezone("slack", "T1", "C1", "Europe/London")  # through this process
    assert (await cached.get_channel_settings("slack", "C1")).timezone == "Europe/London"
    await cached.set_channel_watch("slack", "T1", "C1", True)
    assert (await cached.get_channel_settings("slack", "C1")).watch is True
    await cached.delete_workspace("slack", "T1")
    assert (await cached.get_channel_settings("slack", "C1")).watch is False
    assert await cached.ping() is True  # everything else is the store's
    assert cached.unwrap() is raw


async def test_another_replicas_write_is_seen_within_the_ttl():
    from bot.channel_cache import CachedSettingsStore

    raw = CountingStore()
    now = [0.0]
    cached = CachedSettingsStore(raw, ttl=5.0, clock=lambda: now[0])
    assert (await cached.get_channel_settings("slack", "C1")).timezone == "Asia/Shanghai"
    await raw.set_channel_timezone("slack", "T1", "C1", "Europe/Paris")  # another replica, same database
    now[0] = 4.9
    assert (await cached.get_channel_settings("slack", "C1")).timezone == "Asia/Shanghai"
    now[0] = 5.1
    assert (await cached.get_channel_settings("slack", "C1")).timezone == "Europe/Paris"


async def test_concurrent_misses_share_one_read_and_failures_are_not_cached():
    from bot.channel_cache import CachedSettingsStore

    raw = CountingStore()
    cached = CachedSettingsStore(raw)
    raw.gate = asyncio.Event()
    readers = [asyncio.ensure_future(cached.get_channel_settings("slack", "C9")) for _ in range(50)]
    await asyncio.sleep(0)
    raw.gate.set()
    results = await asyncio.gather(*readers)
    assert raw.reads == 1 and all(r.channel == "C9" for r in results)

    raw.gate, raw.fail = None, True
    cached.invalidate()
    with pytest.raises(RuntimeError):
        await cached.get_channel_settings("slack", "C9")
    raw.fail = False
    assert (await cached.get_channel_settings("slack", "C9")).channel == "C9"


class BatchingStore(CountingStore):
    """A CountingStore that also reads several channels at once, and counts those reads."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    async def get_channel_settings_many(self, platform: str, channels):
        self.batches.append(list(channels))
        return {c: await self.get_channel_settings(platform, c) for c in channels}


async def test_channels_asked_for_together_are_read_in_one_query_and_refreshed_in_one():
    from bot.channel_cache import REFRESH_AHEAD, CachedSettingsStore

    now = [0.0]
    raw = BatchingStore()
    cached = CachedSettingsStore(raw, ttl=5.0, clock=lambda: now[0])
    channels = [f"C{n:02d}" for n in range(50)]
    got = await asyncio.gather(*(cached.get_channel_settings("slack", c) for c in channels))
    assert [s.channel for s in got] == channels
    assert raw.batches == [channels]  # one query for the burst, not fifty

    # Late in the entries' life every reader is answered from the cache, and the refreshes go as one read.
    now[0] = 5.0 * (1 - REFRESH_AHEAD / 2)
    await asyncio.gather(*(cached.get_channel_settings("slack", c) for c in channels))
    await asyncio.gather(*cached._refreshing)
    assert raw.batches[1:] == [channels]
    now[0] = 6.0  # past the first life: still cached, from the refresh
    await cached.get_channel_settings("slack", "C07")
    assert len(raw.batches) == 2


async def test_a_batch_that_goes_wrong_answers_every_reader_and_caches_nothing():
    """A store that fails, or leaves a channel out of its answer, never leaves a reader waiting."""
    from bot.channel_cache import CachedSettingsStore

    class Forgetful(BatchingStore):
        async def get_channel_settings_many(self, platform, channels):
            got = await super().get_channel_settings_many(platform, channels)
            got.pop("C2", None)
            return got

    raw = Forgetful()
    cached = CachedSettingsStore(raw)
    readers = [cached.get_channel_settings("slack", c) for c in ("C1", "C2")]
    results = await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 2)
    assert all(isinstance(r, KeyError) for r in results)
    assert cached.cached_channel_settings("slack", "C1") is None and not cached._loading


async def test_a_read_racing_a_write_is_not_cached():
    from bot.channel_cache import CachedSettingsStore

    raw = CountingStore()
    cached = CachedSettingsStore(raw)
    raw.gate = asyncio.Event()
    read = asyncio.ensure_future(cached.get_channel_settings("slack", "C1"))
    await asyncio.sleep(0)
    await cached.set_channel_timezone("slack", "T1", "C1", "Europe/London")  # lands while the read waits
    raw.gate.set()
    await read
    raw.gate = None
    assert (await cached.get_channel_settings("slack", "C1")).timezone == "Europe/London"


async def test_a_timezone_set_in_slack_applies_to_the_next_command(desk: Desk, store: Store, slack_api: FakeSlack):
    seen: list[Request] = []

    async def capture(request, desk, call_next):
        seen.append(request)
        return await call_next(request)

    capturing = dataclasses.replace(desk, middleware=[capture])
    async with serving(slack_settings(slack_api), capturing, store) as client:
        send = SlackSender(client, SECRET)

        async def command(text: str) -> None:
            body = load_fixture("slash_command")
            body.update(command="/china-filing", text=text, channel_id="CTZ", response_url=slack_api.response_url())
            assert (await send.command(body)).status == 200

        await command("reminders")  # reads (and caches) the channel's settings
        await command("timezone Europe/London")
        await command("reminders")
    assert [r.timezone for r in seen] == ["Asia/Shanghai", "Asia/Shanghai", "Europe/London"]
