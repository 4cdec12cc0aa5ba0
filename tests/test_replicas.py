"""Two replicas behind one PostgreSQL serve the same Slack workspace consistently.

Each replica is a separate ``create_app`` with its own store (its own asyncpg pool) on one fresh schema,
exactly as two ``chinadesk serve`` processes with the same ``DATABASE_URL``. Slack's side is the local
:class:`slack_server.FakeSlack`. Skips, saying why, when no PostgreSQL answers at ``TEST_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from slack_server import SlackSender, Workspace, load_fixture

from bot.app import SLACK_KEY, create_app
from bot.config import Settings
from bot.slack.adapter import SlackAdapter
from bot.store import NewPost, Store, open_store
from handlers import Desk
from tests.test_store import fresh_pg_schema

SECRET = "replica-signing-secret"
ACME = Workspace(team_id="T0ACME", team_name="Acme Ltd", bot_user_id="UACMEBOT", bot_id="BACME")


@dataclass
class Replica:
    name: str
    http: TestClient
    send: SlackSender
    store: Store

    @property
    def adapter(self) -> SlackAdapter:
        return self.http.app[SLACK_KEY]

    async def command(self, text: str, *, team: str = "T0001", channel: str = "CREPL") -> str:
        """The card a slash command gets back, as its text (the fallback text and every block's text)."""
        body = load_fixture("slash_command")
        body.update(command="/china-filing", text=text, team_id=team, channel_id=channel)
        response = await self.send.command(body)
        assert response.status == 200, await response.text()
        message = json.loads(await response.text())
        return "\n".join([message["text"], *block_texts(message["blocks"])])


def block_texts(value: object) -> list[str]:
    """Every ``text`` string in Block Kit blocks, in order."""
    if isinstance(value, dict):
        text = value.get("text")
        return [text] if isinstance(text, str) else [t for v in value.values() for t in block_texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in block_texts(v)]
    return []


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_pg_schema() as url:
        yield url


@asynccontextmanager
async def replicas(url: str, env: dict[str, str], desk: Desk, n: int = 2,
                   background: bool = False) -> AsyncIterator[list[Replica]]:
    async with AsyncExitStack() as stack:
        out = []
        for i in range(n):
            store = open_store(url)
            await store.open()  # both run the migrations; the advisory lock makes that safe
            stack.push_async_callback(store.close)
            app = create_app(Settings.from_env(env), desk, store, background=background)
            http = await stack.enter_async_context(TestClient(TestServer(app)))
            out.append(Replica(f"r{i}", http, SlackSender(http, SECRET), store))
        yield out


def mention(event_id: str, text: str, team: str = "T0001", bot_user: str = "UBOT") -> dict:
    event = load_fixture("app_mention")
    event.update(event_id=event_id, team_id=team)
    for auth in event.get("authorizations", []):
        auth.update(team_id=team, user_id=bot_user)
    event["event"].update(text=f"<@{bot_user}> {text}", team=team)
    return event


async def test_an_oauth_install_made_through_one_replica_is_used_by_the_other(pg_url, slack_api, desk):
    env = {"SLACK_SIGNING_SECRET": SECRET, "SLACK_CLIENT_ID": "1234.5678", "SLACK_CLIENT_SECRET": "client-secret",
           "SLACK_API_URL": slack_api.api_url}
    async with replicas(pg_url, env, desk) as (a, b):
        # The admin opens the install page on replica A...
        page = await a.http.get("/slack/install")
        assert page.status == 200
        link = re.search(r'href="([^"]+oauth/v2/authorize[^"]+)"', await page.text())
        assert link
        state = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)["state"][0]
        cookie = page.headers["Set-Cookie"].split(";")[0]
        slack_api.add_oauth_code("code-acme", ACME, bot_token="xoxb-acme-token")
        # ...and Slack sends them back to replica B, which finds A's state in the database.
        back = await b.http.get(f"/slack/oauth_redirect?code=code-acme&state={state}", headers={"Cookie": cookie})
        assert back.status == 200, await back.text()
        saved = await a.store.find_installation("slack", ACME.team_id)
        assert saved and saved["installation"]["bot_token"] == "xoxb-acme-token"

        # Either replica answers that workspace with its token.
        for i, replica in enumerate((a, b)):
            event = mention(f"EvAcme{i}", "how long does the CAC take to review a facial recognition filing?",
                            team=ACME.team_id, bot_user=ACME.bot_user_id)
            event["event"]["ts"] = f"1758506400.00{i}"
            assert (await replica.send.event(event)).status == 200
            await replica.adapter.drain()
        posts = slack_api.calls_to("chat.postMessage")
        assert [p.token for p in posts] == ["xoxb-acme-token", "xoxb-acme-token"]


async def test_the_same_event_delivered_to_both_replicas_is_answered_once(pg_url, slack_api, desk):
    env = {"SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": slack_api.bot_token, "SLACK_API_URL": slack_api.api_url}
    async with replicas(pg_url, env, desk) as (a, b):
        for round_ in range(5):
            event = mention(f"EvTwice{round_}", "what does the facial recognition filing involve?")
            event["event"]["ts"] = f"1758506500.00{round_}"
            # Slack's first delivery reaches A while its retry (X-Slack-Retry-Num) reaches B, concurrently.
            first, retry = await asyncio.gather(a.send.event(event), b.send.event(event, retry_num=1))
            assert first.status == 200 and retry.status == 200
            await asyncio.gather(a.adapter.drain(), b.adapter.drain())
        posts = slack_api.calls_to("chat.postMessage")
        assert len(posts) == 5, [p.params.get("thread_ts") for p in posts]
        assert len({p.params["thread_ts"] for p in posts}) == 5


async def test_a_deadline_tracked_through_one_replica_is_listed_and_cancelled_through_the_other(
        pg_url, slack_api, desk):
    env = {"SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": slack_api.bot_token, "SLACK_API_URL": slack_api.api_url}
    async with replicas(pg_url, env, desk) as (a, b):
        tracked = await a.command("remind facial-recognition from today board pack")
        assert "Reminders set" in tracked, tracked
        ref = re.search(r"\bD(\d+)\b", await b.command("reminders"))
        assert ref, "replica B lists the deadline replica A tracked"
        listing = await b.command("reminders")
        assert "board pack" in listing and "Facial recognition" in listing
        cancelled = await b.command(f"cancel D{ref.group(1)}")
        assert f"D{ref.group(1)}" in cancelled
        assert not re.search(rf"\bD{ref.group(1)}\b.*due", await a.command("reminders"))
        # The App Home data (what each replica would publish) agrees too.
        assert await a.store.list_tracked("slack", workspace="T0001") == \
            await b.store.list_tracked("slack", workspace="T0001")


async def test_both_replicas_schedulers_post_each_due_reminder_exactly_once(pg_url, slack_api, desk, monkeypatch):
    # The schedulers read their Slack settings from the environment, as in production.
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack_api.bot_token)
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    now = dt.datetime.now(dt.UTC)
    seed = open_store(pg_url)
    await seed.open()
    try:
        for c in range(6):
            await seed.add_posts(
                [NewPost(f"repl-{c}-{i}", now - dt.timedelta(minutes=5 - i), now + dt.timedelta(days=3),
                         {"topic": "facial-recognition", "due": (now + dt.timedelta(days=3)).date().isoformat(),
                          "tz": "Asia/Shanghai", "label": f"reminder {i}", "start": "2026-10-01"}) for i in range(5)],
                platform="slack", workspace="T0001", channel=f"CSCHED{c}", kind="deadline",
            )
    finally:
        await seed.close()
    env = {"SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": slack_api.bot_token, "SLACK_API_URL": slack_api.api_url}
    async with replicas(pg_url, env, desk, background=True) as (a, _b):
        # Both schedulers start a pass at start-up; wait (bounded) until every post is done.
        for _ in range(200):
            posts = await a.store.list_posts("slack")
            if posts and all(p.status == "posted" for p in posts):
                break
            await asyncio.sleep(0.05)
        posts = await a.store.list_posts("slack")
    assert len(posts) == 30 and all(p.status == "posted" for p in posts)
    sent = slack_api.calls_to("chat.postMessage")
    keys = [c.params.get("metadata") for c in sent]
    assert len(sent) == 30, "each due reminder is posted once, whichever replica claimed it"
    assert len(set(map(str, keys))) == 30
