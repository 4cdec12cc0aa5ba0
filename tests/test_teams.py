"""Teams over real HTTP: Bot Framework Activity JSON is POSTed to ``/api/messages`` on the aiohttp app,
the bot answers through botbuilder's ConnectorClient to a local Bot Connector-compatible server
(:mod:`tests.connector_server`), and the tests assert on the Adaptive Cards that server received.

Fixtures in ``tests/fixtures/teams/`` are Teams payloads as Teams sends them (personal chat, channel
@mention with its mention entity, group chat, install, removal, Action.Submit, Action.Execute invoke);
each test only points ``serviceUrl`` at the local connector.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.config import Settings
from bot.store import Store, open_store
from bot.teams.common import ROUTE, TEAMS_KEY, WELCOME_TITLE, DeliveryError, channel_key
from bot.teams.engine import setup_teams
from handlers import Desk
from handlers.request import Reply
from tests.connector_server import ConnectorServer, HoldingSocket, KeyServer, Sent

FIXTURES = Path(__file__).parent / "fixtures" / "teams"
ACCEPTED = (201, 202)  # botbuilder answered 201, the Agents SDK 202: Teams takes any 2xx
APP_ID = "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b"  # the fixtures' bot is 28:<this>
TENANT = "9c4e2b7a-1d3f-4a5b-8c6d-7e8f9a0b1c2d"
TEAM_ID = "19:Kc2bX7yN4mQ1pR8wT5vZ3aS6dF9gH0jL@thread.tacv2"
CHANNEL_ID = "19:8d4f2a6c1e3b5d7f9a0c2e4b6d8f1a3c@thread.tacv2"
USER_AAD = "6f1c8e2d-4b3a-4c5d-9e8f-0a1b2c3d4e5f"


def card_schema() -> jsonschema.protocols.Validator:
    schema = json.loads((FIXTURES / "adaptive-card-1.5.schema.json").read_text(encoding="utf-8-sig"))
    return jsonschema.Draft6Validator(schema)


SCHEMA = card_schema()


def assert_valid_card(card: dict[str, Any]) -> None:
    errors = sorted(SCHEMA.iter_errors(card), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:5])
    assert card["version"] == "1.5"


def fixture(name: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    data.update(changes)
    return data


def texts(card: dict[str, Any], *, markdown_only: bool = False) -> list[str]:
    """Every text block's text in a card, in order, containers included: TextBlocks (read as Markdown) and
    RichTextBlocks (their runs joined; never read as Markdown, so left out with ``markdown_only``)."""
    out: list[str] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") == "TextBlock":
                out.append(item["text"])
            elif item.get("type") == "RichTextBlock" and not markdown_only:
                out.append("".join(run if isinstance(run, str) else run["text"] for run in item["inlines"]))
            walk(item.get("items", []))

    walk(card["body"] if card.get("type") == "AdaptiveCard" else [card])
    return out


def facts(card: dict[str, Any]) -> dict[str, str]:
    return {f["title"]: f["value"] for item in card["body"] if item["type"] == "FactSet" for f in item["facts"]}


def find(card: dict[str, Any], element_id: str) -> dict[str, Any]:
    return next(item for item in card["body"] if item.get("id") == element_id)


def submit_data(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["data"] for a in card.get("actions", []) if a["type"] == "Action.Submit"]


class TeamsHarness:
    """The aiohttp app with the Teams endpoint, a store, and the local connector its replies go to."""

    def __init__(self, server: TestServer, connector: ConnectorServer, store: Store | None) -> None:
        self.server = server
        self.connector = connector
        self.store = store

    @property
    def endpoint(self) -> Any:
        return self.server.app[TEAMS_KEY]

    async def post(self, activity: dict[str, Any], *, headers: dict[str, str] | None = None,
                   raw: bytes | None = None) -> tuple[int, Any]:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        body = raw if raw is not None else json.dumps(activity).encode()
        async with aiohttp.ClientSession() as session, session.post(
            self.server.make_url(ROUTE), data=body, headers=hdrs
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text and resp.content_type == "application/json" else text)

    async def say(self, name: str, **changes: Any) -> list[Sent]:
        """POST a fixture (serviceUrl -> local connector) and return what the bot sent back."""
        before = len(self.connector.sent)
        status, _ = await self.post(fixture(name, serviceUrl=self.connector.url, **changes))
        assert status in (200, *ACCEPTED), status
        return self.connector.sent[before:]


def build_app(settings: Settings, desk: Desk, store: Store | None) -> web.Application:
    """The server under test: the shared Slack + Teams aiohttp app from bot.app.create_app."""
    try:
        from bot.app import create_app
    except ImportError:  # a checkout without the shared server: mount Teams as create_app does
        app = web.Application()
        setup_teams(app, settings=settings, desk=desk, store=store)
        return app
    return create_app(settings, desk, store, background=False)  # tests that need the scheduler drive it


@pytest.fixture
async def connector() -> AsyncIterator[ConnectorServer]:
    server = await ConnectorServer().start()
    yield server
    await server.close()


ENGINES = ["agents", "botbuilder"]
LOGIN_TOKEN = "bot-token-from-local-login"


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Every contract test runs on both engines: the Agents SDK (default) and the deprecated botbuilder."""
    if request.param == "botbuilder":
        pytest.importorskip("botbuilder.core", reason="the botbuilder engine needs pip install -e '.[botbuilder]'")
    return request.param


class LocalLogin:
    """Microsoft's login service, played locally: the bot's outgoing token is ``token`` (the Agents SDK's
    token-provider shape: ``get_access_token(resource, scopes)``)."""

    def __init__(self, token: str = LOGIN_TOKEN) -> None:
        self.token = token

    async def get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        return self.token


def use_local_microsoft(endpoint: Any, keys: KeyServer, login: LocalLogin | None) -> None:
    """Point the endpoint's token validation at the local key server and (with ``login``) its outgoing
    tokens at a local login service, whichever engine it runs on."""
    if endpoint.engine == "agents":
        from bot.teams.agents import OutgoingTokens, make_adapter

        endpoint.key_source = lambda _uri: keys.metadata_url
        if login is not None:
            endpoint.tokens = OutgoingTokens(login)
            endpoint.adapter = endpoint.deliverer.adapter = make_adapter(endpoint.tokens, APP_ID)
        return
    from botframework.connector.auth import MicrosoftAppCredentials, ServiceClientCredentialsFactory

    from bot.teams.connector import BotFrameworkConfig, make_adapter

    class BotbuilderLogin(ServiceClientCredentialsFactory):
        async def is_valid_app_id(self, app_id: str) -> bool:
            return app_id == APP_ID

        async def is_authentication_disabled(self) -> bool:
            return False

        async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                     validate_authority: bool) -> MicrosoftAppCredentials:
            class Credentials(MicrosoftAppCredentials):
                def get_access_token(self, force_refresh: bool = False) -> str:
                    return login.token  # type: ignore[union-attr]

            credentials = Credentials(app_id, "unused", oauth_scope=oauth_scope)
            credentials.app = "local"  # no MSAL client: the token comes from here
            return credentials

    config = BotFrameworkConfig.from_settings(
        endpoint.settings, TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=keys.metadata_url,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER="https://api.botframework.com")
    endpoint.adapter = endpoint.deliverer.adapter = make_adapter(
        endpoint.settings, config, BotbuilderLogin() if login is not None else None)
    endpoint.metadata_url = keys.metadata_url


async def _harness(desk: Desk, store: Store | None, connector: ConnectorServer, env: dict[str, str],
                   engine: str = "agents", keys: KeyServer | None = None,
                   login: LocalLogin | None = None) -> TestServer:
    app = build_app(Settings.from_env({**env, "TEAMS_ENGINE": engine}), desk, store)
    assert app[TEAMS_KEY].engine == engine
    if keys is not None:  # token validation against the local key server instead of Microsoft's
        use_local_microsoft(app[TEAMS_KEY], keys, login)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def teams(desk: Desk, store: Store, connector: ConnectorServer, engine: str) -> AsyncIterator[TeamsHarness]:
    server = await _harness(desk, store, connector, {"DATABASE_URL": "sqlite:///:memory:"}, engine)
    yield TeamsHarness(server, connector, store)
    await server.close()


# ------------------------------------------------------------------------------------ answering


async def test_personal_chat_deadline_card(teams: TeamsHarness):
    (sent,) = await teams.say("personal_message.json")
    # A reply to the user's message, in their personal conversation.
    assert sent.path.endswith("/activities/1758506400123")
    assert sent.conversation_id.startswith("a:1Ux3mW9qB5zK7nP2vT8yR4cL6hJ0dF3gS5aQ7wE9rY1uI3oP5lK7jH9gF2dS4aZ6xC")
    assert sent.authorization is None  # local mode: no token on replies either
    card = sent.card
    assert_valid_card(card)
    title = card["body"][0]
    assert title["text"].startswith("Facial recognition technology application filing: due Thu 6 Nov 2025")
    assert (title["weight"], title["size"], title["wrap"]) == ("bolder", "medium", True)
    assert facts(card)["Due"] == "Thu 6 Nov 2025"
    assert facts(card)["Triggered"] == "Sat 20 Sep 2025"
    deadline = find(card, "deadline")
    assert "2025-11-06" in deadline["items"][0]["text"]
    assert any("make-up working days" in t for t in texts(deadline))
    body = texts(card)
    assert any("[What Are China's New Facial Recognition Regulations?](https://focus.cbbc.org/" in t for t in body)
    assert any("(2025-06-27)" in t for t in body)
    caveat = next(b for b in card["body"] if b.get("isSubtle") and "not legal advice" in b["text"])
    assert caveat["size"] == "small"
    votes = [d for d in submit_data(card) if d["action"] == "feedback"]
    assert [(d["vote"], d["topic"], d["kind"]) for d in votes] == [
        ("up", "facial-recognition", "deadline"), ("down", "facial-recognition", "deadline")]
    # That deadline has passed (Thu 6 Nov 2025): no "Set reminders" button that could only be refused.
    assert not [d for d in submit_data(card) if d["action"] == "command" and " remind " in d["text"]]
    # The plain-text fallback travels with the card.
    assert sent.body["summary"].startswith("Facial recognition technology application filing: due Thu 6 Nov 2025")
    assert card["fallbackText"].startswith("Facial recognition technology application filing")


async def test_channel_mention_is_stripped_and_answered_in_the_thread(teams: TeamsHarness):
    (sent,) = await teams.say("channel_mention.json")
    assert sent.conversation_id == f"{CHANNEL_ID};messageid=1758506700456"
    assert sent.reply_to_id == "1758506700456"
    assert facts(sent.card)["Due"] == "Thu 6 Nov 2025"
    assert "2025-11-06" in find(sent.card, "deadline")["items"][0]["text"]
    # The reference is stored for the channel (not the thread), for later proactive posts.
    stored = await teams.store.get_conversation("teams", CHANNEL_ID)
    assert stored is not None and stored["conversation"]["id"] == CHANNEL_ID
    assert "activityId" not in stored


@pytest.mark.parametrize("text", [
    "<at>China Desk</at> china-filing facial-recognition",
    "<at>China Desk</at> /china-filing facial-recognition",
    "<at>China Desk</at> filing facial-recognition",
])
async def test_every_command_form_works_in_a_channel(teams: TeamsHarness, text: str):
    (sent,) = await teams.say("channel_mention.json", text=text, id=f"m-{abs(hash(text))}")
    assert sent.card["body"][0]["text"].startswith("Facial recognition technology application filing")
    assert_valid_card(sent.card)


async def test_group_chat_mention(teams: TeamsHarness):
    (sent,) = await teams.say("group_chat_mention.json")
    card = sent.card
    assert_valid_card(card)
    assert "Xiaohongshu" in card["body"][0]["text"] or "RED" in card["body"][0]["text"]


async def test_other_text_goes_to_channel_qa(teams: TeamsHarness):
    text = "<at>China Desk</at> how do we sell on xiaohongshu?"
    (sent,) = await teams.say("channel_mention.json", text=text, id="qa-1")
    assert_valid_card(sent.card)
    kinds = {d.get("kind") for d in submit_data(sent.card) if d["action"] == "feedback"}
    assert kinds == {"answer"}


# --------------------------------------------------------------------- friendly odd messages


@pytest.mark.parametrize("text", ["<at>China Desk</at>", "<at>China Desk</at>   \n", ""])
async def test_mention_only_and_empty_messages_get_the_help_card(teams: TeamsHarness, text: str):
    (sent,) = await teams.say("channel_mention.json", text=text, id=f"e-{len(text)}")
    card = sent.card
    assert_valid_card(card)
    assert card["body"][0]["text"] == "China Desk: what I can do"
    assert any("/china-filing" in t for t in texts(card))


async def test_personal_message_without_text_gets_help(teams: TeamsHarness):
    activity = fixture("personal_message.json", serviceUrl=teams.connector.url, id="no-text")
    del activity["text"]
    status, _ = await teams.post(activity)
    assert status in ACCEPTED
    assert teams.connector.cards[-1]["body"][0]["text"] == "China Desk: what I can do"


async def test_100_kb_message_gets_a_polite_refusal(teams: TeamsHarness):
    (sent,) = await teams.say("personal_message.json", text="x" * 100_000, id="big")
    card = sent.card
    assert_valid_card(card)
    assert card["body"][0]["text"] == "I couldn't do that"
    assert any("100,000 characters" in t and "Please shorten it" in t for t in texts(card))
    assert len(json.dumps(sent.body)) < 28_000  # Teams' message size limit


async def test_user_text_never_becomes_a_link_or_mention(teams: TeamsHarness):
    evil = "china-filing [click me](https://evil.example/x) <b>hi</b> <at>Everyone</at> **bold**"
    (sent,) = await teams.say("personal_message.json", text=evil, id="evil")
    card = sent.card
    assert_valid_card(card)
    shown = "\n".join(texts(card))
    markdown = "\n".join(texts(card, markdown_only=True))  # what a client reads as Markdown
    assert "[click me](" not in markdown and "<b>" not in markdown and "**bold**" not in markdown
    # Shown as typed, in text no client reads as Markdown (a RichTextBlock): no link, no bold, no escapes.
    assert "[click me](https://evil.example/x) <b>hi</b>" in shown and "**bold**" in shown
    assert "\\" not in shown
    assert "<at>" not in shown  # a mention of someone else is dropped, markup and all
    assert "&lt;" not in shown  # HTML entities are not Markdown: they would show literally


# --------------------------------------------------------------------------------- card actions


async def test_feedback_submit_is_stored(teams: TeamsHarness):
    (sent,) = await teams.say("submit_feedback.json")
    assert_valid_card(sent.card)
    assert "Thanks" in sent.card["body"][0]["text"]
    (fb,) = await teams.store.list_feedback("teams")
    assert (fb.vote, fb.topic, fb.user, fb.workspace, fb.message_ref) == (
        "up", "facial-recognition", USER_AAD, TENANT, "1758506401000")
    assert fb.question == "filing facial-recognition from 2025-09-20"


async def test_command_button_reruns_through_the_core(teams: TeamsHarness):
    (sent,) = await teams.say("submit_command.json")
    assert sent.card["body"][0]["text"].startswith("Facial recognition technology application filing (人脸识别")
    assert_valid_card(sent.card)


async def test_menu_picker_submits_the_chosen_command(teams: TeamsHarness):
    (menu,) = await teams.say("personal_message.json", text="china-platform", id="menu")
    picker = next(b for b in menu.card["body"] if b["type"] == "Input.ChoiceSet")
    choice = next(c["value"] for c in picker["choices"] if "xiaohongshu" in c["value"])
    assert {"action": "command"} in submit_data(menu.card)
    # Teams merges the inputs into the submitted data.
    (sent,) = await teams.say("submit_command.json", value={"action": "command", "command": choice}, id="pick")
    assert "RED" in sent.card["body"][0]["text"] or "Xiaohongshu" in sent.card["body"][0]["text"]


async def test_action_execute_invoke_records_feedback(teams: TeamsHarness):
    status, body = await teams.post(fixture("invoke_adaptive_card_action.json", serviceUrl=teams.connector.url))
    assert status == 200
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.activity.message"
    (fb,) = await teams.store.list_feedback("teams")
    assert fb.vote == "down" and fb.topic == "facial-recognition"
    # Teams retrying the same invoke: acknowledged, not stored twice.
    status, _ = await teams.post(fixture("invoke_adaptive_card_action.json", serviceUrl=teams.connector.url))
    assert status == 200
    assert len(await teams.store.list_feedback("teams")) == 1


async def test_redelivered_activity_is_answered_once(teams: TeamsHarness):
    first = await teams.say("personal_message.json")
    again = await teams.say("personal_message.json")
    assert len(first) == 1 and again == []


# ------------------------------------------------------------------------- install / uninstall


async def test_install_welcomes_and_stores_the_reference(teams: TeamsHarness):
    (sent,) = await teams.say("conversation_update_members_added.json")
    assert sent.conversation_id == TEAM_ID and sent.reply_to_id is None  # a new post in General
    card = sent.card
    assert_valid_card(card)
    assert card["body"][0]["text"] == WELCOME_TITLE
    shown = "\n".join(texts(card))
    assert "by @mentioning me" in shown and "/china-filing" in shown and "/china-sector" in shown
    assert [d["text"] for d in submit_data(card)] == ["/china-filing", "/china-sector", "/china-platform"]
    stored = await teams.store.get_conversation("teams", TEAM_ID)
    assert stored["serviceUrl"] == teams.connector.url and stored["conversation"]["id"] == TEAM_ID


async def test_person_joining_gets_no_welcome(teams: TeamsHarness):
    joined = fixture("conversation_update_members_added.json")["membersAdded"]
    joined[0]["id"] = "29:someone-else"
    assert await teams.say("conversation_update_members_added.json", membersAdded=joined) == []


async def test_removal_deletes_references(teams: TeamsHarness):
    await teams.say("conversation_update_members_added.json")
    await teams.say("channel_mention.json")
    assert await teams.store.get_conversation("teams", TEAM_ID) is not None
    assert await teams.say("conversation_update_members_removed.json") == []
    assert await teams.store.get_conversation("teams", TEAM_ID) is None


async def test_uninstall_deletes_references(teams: TeamsHarness):
    await teams.say("conversation_update_members_added.json")
    assert await teams.say("installation_update_remove.json") == []
    assert await teams.store.get_conversation("teams", TEAM_ID) is None


async def test_references_stored_and_deleted_on_postgresql(desk: Desk, connector: ConnectorServer, engine: str):
    from tests.test_store import fresh_pg_schema

    async with fresh_pg_schema() as url:
        pg = open_store(url)
        await pg.open()
        server = await _harness(desk, pg, connector, {"DATABASE_URL": url}, engine)
        try:
            harness = TeamsHarness(server, connector, pg)
            (sent,) = await harness.say("conversation_update_members_added.json")
            assert sent.card["body"][0]["text"] == WELCOME_TITLE
            await harness.say("personal_message.json")
            personal = fixture("personal_message.json")["conversation"]["id"]
            assert (await pg.get_conversation("teams", personal))["conversation"]["id"] == personal
            assert (await pg.get_conversation("teams", TEAM_ID)) is not None
            await harness.say("installation_update_remove.json")
            assert await pg.get_conversation("teams", TEAM_ID) is None
        finally:
            await server.close()
            await pg.close()


# ------------------------------------------------------------------------------ proactive posts


async def test_proactive_post_through_a_stored_reference(teams: TeamsHarness):
    await teams.say("channel_mention.json")
    teams.connector.clear()
    reply = Reply(kind="reminder", title="Reminder: facial recognition filing due Thu 6 Nov 2025", text="Due soon.")
    ref = await teams.endpoint.deliverer.deliver_reply(CHANNEL_ID, reply)
    (sent,) = teams.connector.sent
    # A new top-level post in the channel, not a reply into the thread it was set up from.
    assert sent.path == f"/v3/conversations/{CHANNEL_ID}/activities" and sent.reply_to_id is None
    assert sent.card["body"][0]["text"] == "Reminder: facial recognition filing due Thu 6 Nov 2025"
    assert ref.startswith("sent-")
    assert_valid_card(sent.card)


async def test_a_reference_stored_by_botbuilder_still_carries_reminders(teams: TeamsHarness):
    """Rows written before the move to the Agents SDK (botbuilder 4.17's ``ConversationReference.serialize()``:
    ``bot``, ``user``, no ``activityId``) post through whichever engine runs now."""
    stored = {"user": {"id": "29:1kXbz3mJ2pQ8vN5wR7tY0uI4oA6sD9fG", "name": "Alex Chen", "aadObjectId": USER_AAD},
              "bot": {"id": f"28:{APP_ID}", "name": "China Desk"},
              "conversation": {"isGroup": True, "conversationType": "channel", "id": CHANNEL_ID},
              "channelId": "msteams", "locale": "en-GB", "serviceUrl": teams.connector.url}
    await teams.store.save_conversation("teams", CHANNEL_ID, TENANT, stored)
    ref = await teams.endpoint.deliverer.deliver_reply(CHANNEL_ID, Reply(kind="reminder", title="Due soon", text="x"))
    (sent,) = teams.connector.sent
    assert sent.path == f"/v3/conversations/{CHANNEL_ID}/activities" and ref.startswith("sent-")
    assert sent.body["from"]["id"] == f"28:{APP_ID}" and sent.card["body"][0]["text"] == "Due soon"
    # A message in the channel refreshes the row (the Agents SDK's JSON has the same shape).
    await teams.say("channel_mention.json")
    refreshed = await teams.store.get_conversation("teams", CHANNEL_ID)
    assert refreshed["bot"]["id"] == f"28:{APP_ID}" and refreshed["conversation"]["id"] == CHANNEL_ID
    assert "activityId" not in refreshed and "requestId" not in refreshed


async def test_proactive_post_without_reference_is_a_permanent_failure(teams: TeamsHarness):
    with pytest.raises(DeliveryError) as info:
        await teams.endpoint.deliverer.deliver_reply(
            "19:nobody@thread.tacv2", Reply(kind="reminder", title="x", text="y")
        )
    assert info.value.permanent


async def test_proactive_post_after_the_bot_was_removed_forgets_the_conversation(teams: TeamsHarness):
    await teams.say("channel_mention.json")
    teams.connector.refuse(CHANNEL_ID, 403)
    with pytest.raises(DeliveryError) as info:
        await teams.endpoint.deliverer.deliver_reply(CHANNEL_ID, Reply(kind="reminder", title="x", text="x"))
    assert info.value.permanent
    assert await teams.store.get_conversation("teams", CHANNEL_ID) is None


async def test_scheduler_delivers_teams_reminders_through_the_registered_deliverer(teams: TeamsHarness):
    import datetime as dt

    from bot.platforms import build_deliverers
    from bot.scheduler import Outgoing
    from bot.store import ScheduledPost

    await teams.say("channel_mention.json")
    teams.connector.clear()
    deliverer = build_deliverers(teams.store, {})["teams"]  # what `chinadesk serve` / `worker` build
    now = dt.datetime(2025, 11, 3, 1, 0, tzinfo=dt.UTC)

    def post(channel: str) -> Outgoing:
        row = ScheduledPost(
            id=7, key=f"deadline:1:{channel}", platform="teams", workspace=TENANT, channel=channel, kind="deadline",
            deadline_id=1, subscription_id=None, due_at=now, expires_at=now + dt.timedelta(days=3), payload={},
            status="claimed", lease_until=now, claim_token="t", attempts=1, late=False, posted_ref=None,
            posted_at=None, last_error=None, created_at=now,
        )
        reply = Reply(kind="reminder", title="Facial recognition filing due in 3 working days", text="Due Thu 6 Nov.")
        return Outgoing(post=row, reply=reply, late=False)

    result = await deliverer.deliver(post(CHANNEL_ID))
    assert result.outcome == "posted" and result.ref.startswith("sent-")
    (sent,) = teams.connector.sent
    assert sent.conversation_id == CHANNEL_ID
    assert sent.card["body"][0]["text"] == "Facial recognition filing due in 3 working days"

    gone = await deliverer.deliver(post("19:removed@thread.tacv2"))
    assert gone.outcome == "paused" and "no stored Teams conversation" in gone.error

    teams.connector.refuse(CHANNEL_ID, 502)  # Teams having a bad moment: try again later
    assert (await deliverer.deliver(post(CHANNEL_ID))).outcome == "retry"
    teams.connector.refuse(CHANNEL_ID, 404)  # the conversation is gone: pause, and forget it
    assert (await deliverer.deliver(post(CHANNEL_ID))).outcome == "paused"
    assert await teams.store.get_conversation("teams", CHANNEL_ID) is None


@pytest.mark.parametrize(("status", "outcome"), [
    (401, "paused"),  # our credentials were refused: stop and show it, but keep the conversation
    (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
    (400, "failed"),  # Teams refused the message itself: sending it again cannot help
])
async def test_teams_delivery_errors_retry_pause_or_fail(teams: TeamsHarness, status: int, outcome: str):
    import datetime as dt

    from bot.scheduler import Outgoing
    from bot.store import ScheduledPost

    await teams.say("channel_mention.json")
    teams.connector.refuse(CHANNEL_ID, status, retry_after=7 if status == 429 else None)
    now = dt.datetime(2025, 11, 3, 1, 0, tzinfo=dt.UTC)
    row = ScheduledPost(
        id=7, key="d1:rem1", platform="teams", workspace=TENANT, channel=CHANNEL_ID, kind="deadline", deadline_id=1,
        subscription_id=None, due_at=now, expires_at=now + dt.timedelta(days=3), payload={}, status="claimed",
        lease_until=now, claim_token="t", attempts=1, late=False, posted_ref=None, posted_at=None, last_error=None,
        created_at=now,
    )
    result = await teams.endpoint.deliverer.deliver(
        Outgoing(row, Reply(kind="reminder", title="Reminder", text="Due soon."), late=False))
    assert result.outcome == outcome, result
    if status == 429:
        assert result.retry_after == 7
    assert await teams.store.get_conversation("teams", CHANNEL_ID) is not None  # only 403/404 forget it


@pytest.mark.parametrize(("status", "retry_after", "minutes"), [(429, 30, 15), (503, None, 90)])
async def test_teams_busy_or_down_then_back_posts_each_reminder_once(teams: TeamsHarness, library,
                                                                     status: int, retry_after: int | None,
                                                                     minutes: int):
    import datetime as dt

    from bot.scheduler import Scheduler
    from content.calendar import ChinaCalendar
    from handlers import Request
    from tests.test_scheduler import R10, SET_AT, passes

    await teams.say("channel_mention.json")  # the conversation reference reminders are posted through
    teams.connector.clear()
    desk = Desk(library=library, store=teams.store, calendar=ChinaCalendar(overrides_path=None))
    reply = await desk.handle(Request(text="/china-filing remind facial-recognition from 2025-09-20", now=SET_AT,
                                      platform="teams", channel=CHANNEL_ID, workspace=TENANT))
    assert reply.kind == "reminder", reply.text
    sched = Scheduler(teams.store, desk, {"teams": teams.endpoint.deliverer})
    teams.connector.refuse(CHANNEL_ID, status, retry_after=retry_after)
    reports = await passes(sched, R10, R10 + dt.timedelta(minutes=minutes), dt.timedelta(seconds=30))
    assert teams.connector.sent == [] and sum(r.failed for r in reports) == 0
    assert sum(r.retried for r in reports) >= 8
    teams.connector.allow(CHANNEL_ID)
    end = R10 + dt.timedelta(minutes=minutes + 30)
    await passes(sched, R10 + dt.timedelta(minutes=minutes, seconds=30), end, dt.timedelta(seconds=30))
    (sent,) = teams.connector.sent  # the 10-day reminder, once
    assert "Facial recognition" in json.dumps(sent.card)
    [posted] = [p for p in await teams.store.list_posts("teams", CHANNEL_ID) if p.due_at == R10]
    assert posted.status == "posted" and posted.posted_ref == "sent-" + posted.posted_ref.split("-")[1]


# ------------------------------------------------------------------------------- authentication


async def test_local_mode_warns_loudly(desk: Desk, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="chinadesk.teams"):
        build_app(Settings.from_env({"DATABASE_URL": "sqlite:///:memory:"}), desk, None)
    (record,) = [r for r in caplog.records if r.name == "chinadesk.teams"]
    assert record.levelno == logging.WARNING and "LOCAL MODE" in record.getMessage()
    assert "WITHOUT any token check" in record.getMessage()


async def test_local_mode_refuses_non_loopback_service_urls(teams: TeamsHarness):
    status, _ = await teams.post(fixture("personal_message.json", id="remote"))  # smba.trafficmanager.net
    assert status == 403
    assert teams.connector.sent == []


SECURED_ENV = {"MICROSOFT_APP_ID": APP_ID, "MICROSOFT_APP_PASSWORD": "not-a-real-secret",
               "MICROSOFT_APP_TENANT_ID": TENANT}


@pytest.fixture
async def secured(desk: Desk, store: Store, connector: ConnectorServer, engine: str) -> AsyncIterator[TeamsHarness]:
    """The endpoint with an app id: every request must carry a valid Bot Connector token (from the local
    key server); the bot's own tokens come from a local stand-in for Microsoft's login service."""
    keys = KeyServer().start()
    server = await _harness(desk, store, connector, SECURED_ENV, engine, keys, LocalLogin())
    harness = TeamsHarness(server, connector, store)
    harness.keys = keys  # type: ignore[attr-defined]
    yield harness
    await server.close()
    keys.close()


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz"])
async def test_with_an_app_id_requests_without_a_valid_token_get_401(secured: TeamsHarness, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    status, _ = await secured.post(fixture("personal_message.json", serviceUrl=secured.connector.url), headers=headers)
    assert status == 401
    assert secured.connector.sent == []


async def test_with_an_app_id_forged_expired_or_misaddressed_tokens_get_401(secured: TeamsHarness):
    from cryptography.hazmat.primitives.asymmetric import rsa

    keys: KeyServer = secured.keys  # type: ignore[attr-defined]
    url = secured.connector.url
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad_tokens = [
        keys.token(app_id=APP_ID, service_url=url, key=other_key),  # signed by someone else
        keys.token(app_id=APP_ID, service_url=url, expires_in=-3600),  # expired
        keys.token(app_id="0b5d7f9a-2c4e-4f6a-8b0d-1e3f5a7c9e2b", service_url=url),  # for another bot
        keys.token(app_id=APP_ID, service_url="https://elsewhere.example/"),  # serviceUrl does not match
        keys.token(app_id=APP_ID, service_url=url, issuer="https://evil.example"),  # wrong issuer
    ]
    for i, token in enumerate(bad_tokens):
        activity = fixture("personal_message.json", serviceUrl=url, id=f"forged-{i}")
        status, _ = await secured.post(activity, headers={"Authorization": f"Bearer {token}"})
        assert status == 401, i
    assert secured.connector.sent == []


async def test_with_an_app_id_a_valid_token_is_accepted(secured: TeamsHarness):
    keys: KeyServer = secured.keys  # type: ignore[attr-defined]
    token = keys.token(app_id=APP_ID, service_url=secured.connector.url)
    status, _ = await secured.post(fixture("personal_message.json", serviceUrl=secured.connector.url),
                                   headers={"Authorization": f"Bearer {token}"})
    assert status in ACCEPTED
    (sent,) = secured.connector.sent
    assert sent.card["body"][0]["text"].startswith("Facial recognition technology application")
    assert sent.authorization == f"Bearer {LOGIN_TOKEN}"  # the reply carries the bot's own token
    # So does a proactive post (a reminder) through the reference that message stored.
    personal = fixture("personal_message.json")["conversation"]["id"]
    await secured.endpoint.deliverer.deliver_reply(personal, Reply(kind="reminder", title="Due soon", text="x"))
    assert secured.connector.sent[-1].authorization == f"Bearer {LOGIN_TOKEN}"
    assert secured.connector.sent[-1].path == f"/v3/conversations/{personal}/activities"


async def test_a_reply_never_blocks_the_server_while_microsofts_login_service_hangs(
    desk: Desk, store: Store, connector: ConnectorServer, monkeypatch: pytest.MonkeyPatch, engine: str,
):
    """The bot's own token comes from Microsoft's login service (MSAL, blocking): with egress that accepts
    and never answers, a valid Teams message gets a quick 503 and every other request is answered meanwhile."""
    keys = KeyServer().start()
    egress = HoldingSocket(hold=4).start()
    server = await _harness(desk, store, connector, SECURED_ENV, engine, keys)  # the real login client
    try:
        harness = TeamsHarness(server, connector, store)
        for name in ("HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, egress.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        token = keys.token(app_id=APP_ID, service_url=connector.url)
        started = asyncio.get_running_loop().time()
        reply = asyncio.ensure_future(harness.post(fixture("personal_message.json", serviceUrl=connector.url),
                                                   headers={"Authorization": f"Bearer {token}"}))
        await asyncio.sleep(0.5)  # the token request is out, unanswered
        async with aiohttp.ClientSession() as session, session.get(
            server.make_url("/healthz"), timeout=aiohttp.ClientTimeout(total=1)) as resp:
            assert resp.status == 200
        assert asyncio.get_running_loop().time() - started < 1.5, "the server froze while the login service hung"
        status, _ = await reply
        assert status == 503
        assert egress.accepted >= 1, "the token request never went out: the test proves nothing"
        assert connector.sent == []
    finally:
        await server.close()
        keys.close()
        egress.close()


async def test_while_signing_keys_cannot_be_fetched_teams_gets_503_then_recovers(secured: TeamsHarness):
    from bot.teams.keys import SigningKeys

    keys: KeyServer = secured.keys  # type: ignore[attr-defined]
    await secured.endpoint.keys.close()
    secured.endpoint.keys = SigningKeys(retry_min=0.05, retry_max=0.2)  # (seconds: the default waits longer)
    keys.down = True
    token = keys.token(app_id=APP_ID, service_url=secured.connector.url)
    activity = fixture("personal_message.json", serviceUrl=secured.connector.url)
    hdrs = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.post(
        secured.server.make_url(ROUTE), json=activity, headers=hdrs) as resp:
        assert resp.status == 503 and int(resp.headers["Retry-After"]) > 0
    assert secured.connector.sent == []

    keys.down = False  # the issuer answers again: the background retry fetches the keys
    for _ in range(100):
        status, _ = await secured.post(activity, headers=hdrs)
        if status != 503:
            break
        await asyncio.sleep(0.05)
    assert status in ACCEPTED
    assert len(secured.connector.sent) == 1
    await secured.endpoint.keys.close()


async def test_a_token_signed_with_a_new_key_is_accepted_after_one_refetch(secured: TeamsHarness):
    from cryptography.hazmat.primitives.asymmetric import rsa

    from bot.teams.keys import REFETCH_UNKNOWN_AFTER, SigningKeys

    keys: KeyServer = secured.keys  # type: ignore[attr-defined]
    now = [1000.0]
    await secured.endpoint.keys.close()
    secured.endpoint.keys = SigningKeys(clock=lambda: now[0])
    url = secured.connector.url

    async def post(n: int) -> int:
        token = keys.token(app_id=APP_ID, service_url=url)
        activity = fixture("personal_message.json", serviceUrl=url, id=f"rolled-{n}")
        return (await secured.post(activity, headers={"Authorization": f"Bearer {token}"}))[0]

    assert await post(1) in ACCEPTED
    fetched = keys.requests
    keys.roll_over(rsa.generate_private_key(public_exponent=65537, key_size=2048), "test-key-2")
    # Just fetched: an unknown key id is not worth another fetch yet (nobody can make us fetch at will).
    assert await post(2) == 401
    assert keys.requests == fetched
    now[0] += REFETCH_UNKNOWN_AFTER  # later: the issuer may well have rolled its keys over; look once
    assert await post(3) in ACCEPTED
    assert keys.requests == fetched + 2  # the metadata and the key set, once
    assert len(secured.connector.sent) == 2
    await secured.endpoint.keys.close()


# ------------------------------------------------------------------------------ bad requests


async def test_not_json_is_415_and_garbage_is_400(teams: TeamsHarness):
    status, _ = await teams.post({}, headers={"Content-Type": "text/plain"}, raw=b"hello")
    assert status == 415
    status, _ = await teams.post({}, raw=b"{not json")
    assert status == 400
    status, _ = await teams.post({"text": "no type"})
    assert status == 400
    assert teams.connector.sent == []


def test_channel_key_drops_the_thread_suffix():
    assert channel_key(f"{CHANNEL_ID};messageid=1758506700456") == CHANNEL_ID
    assert channel_key("a:personal") == "a:personal"


# ------------------------------------------------------------------------------------- follow-ups


async def test_a_follow_up_in_the_personal_chat_uses_the_last_answer(teams: TeamsHarness):
    (first,) = await teams.say("personal_message.json", text="what is the standard contract route", id="f-1")
    assert first.card["body"][0]["text"].startswith("Personal information export standard contract")
    (sent,) = await teams.say("personal_message.json", text="who do we file it with?", id="f-2")
    assert_valid_card(sent.card)
    assert "provincial" in "\n".join(texts(sent.card))


async def test_a_follow_up_in_a_channel_reply_chain_uses_that_chain_only(teams: TeamsHarness):
    chain = {"id": f"{CHANNEL_ID};messageid=1758506799000", "conversationType": "channel", "isGroup": True,
             "tenantId": TENANT}
    other = {**chain, "id": f"{CHANNEL_ID};messageid=1758506799999"}
    await teams.say("channel_mention.json", text="<at>China Desk</at> tell me about xiaohongshu", id="c-1",
                    conversation=chain)
    (sent,) = await teams.say("channel_mention.json", text="<at>China Desk</at> how many users does it have?",
                              id="c-2", conversation=chain)
    assert "300 million" in "\n".join(texts(sent.card))
    (elsewhere,) = await teams.say("channel_mention.json", text="<at>China Desk</at> how many users does it have?",
                                   id="c-3", conversation=other)
    assert "300 million" not in "\n".join(texts(elsewhere.card))


async def test_a_colleague_tagged_in_teams_changes_nothing(teams: TeamsHarness):
    (plain,) = await teams.say("personal_message.json", text="what is xiaohongshu?", id="t-1")
    (tagged,) = await teams.say("personal_message.json", text="<at>Alice Smith</at> what is xiaohongshu?", id="t-2")
    assert texts(tagged.card)[:3] == texts(plain.card)[:3]
