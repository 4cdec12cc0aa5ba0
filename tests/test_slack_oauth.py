"""OAuth multi-workspace installs: the install page, the redirect, the stored installation and its use.

``oauth.v2.access`` is answered by the local :class:`slack_server.FakeSlack`; the installation lands
in the project's store (SQLite here; the installation-store round trip also runs on PostgreSQL, and
skips, saying why, when no server answers at ``TEST_DATABASE_URL``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_server import FakeSlack, SlackSender, Workspace, load_fixture

from bot.app import SLACK_KEY, create_app
from bot.config import Settings
from bot.slack.blockkit import validate_blocks
from bot.slack.installations import StoreInstallationStore, StoreOAuthStateStore
from bot.store import Store, open_store
from handlers import Desk
from tests.conftest import postgres_url, without_postgres

SECRET = "oauth-signing-secret"
ACME = Workspace(team_id="T0ACME", team_name="Acme Ltd", bot_user_id="UACMEBOT", bot_id="BACME")


@pytest.fixture
async def oauth_app(slack_api: FakeSlack, store: Store, desk: Desk) -> AsyncIterator[TestClient]:
    settings = Settings.from_env({
        "SLACK_SIGNING_SECRET": SECRET, "SLACK_CLIENT_ID": "1234.5678", "SLACK_CLIENT_SECRET": "client-secret",
        "SLACK_API_URL": slack_api.api_url,
    })
    app = create_app(settings, desk, store, background=False)
    async with TestClient(TestServer(app)) as client:
        yield client


def acme_event(name: str, event_id: str) -> dict:
    """A fixture payload as it would come from the Acme workspace."""
    event = load_fixture(name)
    event.update(team_id=ACME.team_id, event_id=event_id)
    for auth in event.get("authorizations", []):
        auth.update(team_id=ACME.team_id, user_id=ACME.bot_user_id)
    if "team" in event.get("event", {}):
        event["event"]["team"] = ACME.team_id
    return event


async def install(client: TestClient, slack_api: FakeSlack, code: str = "code-acme") -> tuple[int, str]:
    """What an admin's browser does: open /slack/install, approve at Slack, come back with code and state."""
    page = await client.get("/slack/install")
    assert page.status == 200
    html = await page.text()
    authorize = re.search(r'href="([^"]+oauth/v2/authorize[^"]+)"', html)
    assert authorize, html
    query = parse_qs(urlsplit(authorize.group(1).replace("&amp;", "&")).query)
    assert query["client_id"] == ["1234.5678"]
    assert set(query["scope"][0].split(",")) >= {"commands", "chat:write", "app_mentions:read"}
    state = query["state"][0]
    cookie = page.headers["Set-Cookie"].split(";")[0]
    slack_api.add_oauth_code(code, ACME, bot_token="xoxb-acme-token")
    back = await client.get(f"/slack/oauth_redirect?code={code}&state={state}", headers={"Cookie": cookie})
    return back.status, state


async def test_oauth_install_stores_the_installation_and_later_uses_its_token(
    oauth_app: TestClient, slack_api: FakeSlack, store: Store
):
    status, _state = await install(oauth_app, slack_api)
    assert status == 200
    [exchange] = slack_api.calls_to("oauth.v2.access")
    assert exchange.params["code"] == "code-acme"
    saved = await store.find_installation("slack", ACME.team_id)
    assert saved is not None and saved["installation"]["bot_token"] == "xoxb-acme-token"
    assert saved["installation"]["bot_user_id"] == ACME.bot_user_id

    # A mention in that workspace is answered with that workspace's token.
    event = acme_event("app_mention", "Ev0ACME1")
    event["event"]["text"] = f"<@{ACME.bot_user_id}> what does the facial recognition filing involve?"
    response = await SlackSender(oauth_app, SECRET).event(event)
    assert response.status == 200
    await oauth_app.app[SLACK_KEY].drain()
    [post] = slack_api.calls_to("chat.postMessage")
    assert post.token == "xoxb-acme-token"
    validate_blocks(post.blocks)


async def test_an_oauth_state_works_once(oauth_app: TestClient, slack_api: FakeSlack, store: Store):
    status, state = await install(oauth_app, slack_api)
    assert status == 200
    slack_api.add_oauth_code("code-again", ACME, bot_token="xoxb-other")
    replay = await oauth_app.get(
        f"/slack/oauth_redirect?code=code-again&state={state}",
        headers={"Cookie": f"slack-app-oauth-state={state}"},
    )
    assert replay.status >= 400
    saved = await store.find_installation("slack", ACME.team_id)
    assert saved["installation"]["bot_token"] == "xoxb-acme-token"


async def test_events_from_a_workspace_that_never_installed_post_nothing(
    oauth_app: TestClient, slack_api: FakeSlack
):
    event = acme_event("app_mention", "Ev0STRANGE")
    event["team_id"] = event["authorizations"][0]["team_id"] = event["event"]["team"] = "T0STRANGER"
    await SlackSender(oauth_app, SECRET).event(event)
    await oauth_app.app[SLACK_KEY].drain()
    assert slack_api.calls_to("chat.postMessage") == []


async def test_uninstall_after_oauth_install_forgets_the_token(
    oauth_app: TestClient, slack_api: FakeSlack, store: Store
):
    await install(oauth_app, slack_api)
    event = acme_event("app_uninstalled", "Ev0ACMEBYE")
    response = await SlackSender(oauth_app, SECRET).event(event)
    assert response.status == 200
    await oauth_app.app[SLACK_KEY].drain()
    assert await store.find_installation("slack", ACME.team_id) is None


# ------------------------------------------------------------------ installation store round trip


async def _round_trip(store: Store) -> None:
    installations = StoreInstallationStore(lambda: store)
    states = StoreOAuthStateStore(lambda: store)
    installation = Installation(
        app_id="A1", team_id="T0RT", team_name="Round Trip", bot_token="xoxb-rt", bot_id="B1", bot_user_id="U1BOT",
        bot_scopes=["commands", "chat:write"], user_id="UINSTALLER", installed_at=1_700_000_000.5,
    )
    await installations.async_save(installation)
    found = await installations.async_find_installation(enterprise_id=None, team_id="T0RT")
    assert found is not None
    assert (found.bot_token, found.bot_user_id, found.bot_scopes, found.installed_at) == (
        "xoxb-rt", "U1BOT", ["commands", "chat:write"], 1_700_000_000.5,
    )
    bot = await installations.async_find_bot(enterprise_id=None, team_id="T0RT")
    assert bot is not None and bot.bot_token == "xoxb-rt"
    assert await installations.async_find_bot(enterprise_id=None, team_id="T0NONE") is None
    await installations.async_delete_all(enterprise_id=None, team_id="T0RT")
    assert await installations.async_find_installation(enterprise_id=None, team_id="T0RT") is None

    state = await states.async_issue()
    assert await states.async_consume(state) is True
    assert await states.async_consume(state) is False
    assert await states.async_consume("never-issued") is False


async def test_installation_store_round_trip_sqlite(store: Store):
    await _round_trip(store)


async def test_installation_store_round_trip_postgres():
    import asyncpg

    base = postgres_url()
    try:
        conn = await asyncpg.connect(base, timeout=3)
    except Exception as exc:  # any reason is reported in the skip
        without_postgres(base, f"{type(exc).__name__}: {exc}")
    schema = f"t_slack_{secrets.token_hex(6)}"
    sep = "&" if "?" in base else "?"
    store = open_store(f"{base}{sep}schema={schema}")
    try:
        await store.open()
        await _round_trip(store)
    finally:
        await store.close()
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
