"""bot/slack/manifest.yml against the code, both ways: everything declared is handled, everything handled is declared.

"Handled" is checked twice: against the lists bot/slack/listeners.py registers from, and against the running
bolt app itself (a signed request for each declared command and event must not come back as bolt's
404 "unhandled request").
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from slack_server import FakeSlack, SlackSender, load_fixture

from bot.app import create_app
from bot.config import SLACK_BOT_SCOPES, Settings
from bot.slack.adapter import EVENTS_PATH, REDIRECT_PATH
from bot.slack.listeners import HANDLED_COMMANDS, HANDLED_EVENTS, MESSAGE_SUBSCRIPTIONS
from handlers import Desk
from handlers.router import router

MANIFEST = Path(__file__).resolve().parents[1] / "bot" / "slack" / "manifest.yml"
SECRET = "manifest-secret"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def declared_events(manifest: dict) -> set[str]:
    return set(manifest["settings"]["event_subscriptions"]["bot_events"])


def event_types(subscriptions: set[str]) -> set[str]:
    """Manifest subscriptions -> the event ``type`` Slack sends (message.im, message.channels -> message)."""
    return {s.split(".", 1)[0] for s in subscriptions}


def test_manifest_declares_exactly_the_commands_the_code_handles(manifest: dict):
    declared = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert sorted(declared) == sorted(HANDLED_COMMANDS)
    assert set(HANDLED_COMMANDS) == set(router.commands)  # and the core answers each of them
    for command in manifest["features"]["slash_commands"]:
        assert command["url"].endswith(EVENTS_PATH)
        assert command["description"] and len(command["description"]) <= 100
        assert command.get("should_escape") is False  # we read plain text; see bot.slack.translate.slack_to_plain


def test_manifest_declares_exactly_the_events_the_code_handles(manifest: dict):
    declared = declared_events(manifest)
    assert event_types(declared) == set(HANDLED_EVENTS)
    assert set(MESSAGE_SUBSCRIPTIONS) <= declared
    assert {s for s in declared if s.startswith("message.")} == set(MESSAGE_SUBSCRIPTIONS)


def test_manifest_urls_scopes_and_settings(manifest: dict):
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["request_url"].endswith(EVENTS_PATH)
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"].endswith(EVENTS_PATH)
    assert settings["socket_mode_enabled"] is False
    assert [u for u in manifest["oauth_config"]["redirect_urls"] if u.endswith(REDIRECT_PATH)]
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(SLACK_BOT_SCOPES)
    needed = {"app_mention": "app_mentions:read", "message.im": "im:history", "message.channels": "channels:history",
              "message.groups": "groups:history"}
    for event, scope in needed.items():
        assert event in declared_events(manifest) and scope in SLACK_BOT_SCOPES
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True  # the agent DM lives there
    assert manifest["features"]["bot_user"]["display_name"]
    assert len(manifest["display_information"]["description"]) <= 140
    assert 175 <= len(manifest["display_information"]["long_description"]) <= 4000


def test_manifest_declares_the_agent_experience_with_the_packs_prompts(manifest: dict, desk: Desk):
    """The agent feature, its scope and event, and the same starter prompts the bot sets itself."""
    from handlers.prompts import starter_prompts

    agent = manifest["features"]["agent_view"]
    assert 20 <= len(agent["agent_description"]) <= 500
    assert "assistant:write" in SLACK_BOT_SCOPES and "assistant_thread_started" in declared_events(manifest)
    assert "users:read" in SLACK_BOT_SCOPES  # the App Home asks users.info whether the viewer is an admin
    expected = [{"title": p.title, "message": p.message} for p in starter_prompts(desk.library)]
    assert agent["suggested_prompts"] == expected


# ------------------------------------------------------------------- against the running bolt app


@pytest.fixture
async def sender(desk: Desk, tmp_path) -> AsyncIterator[SlackSender]:
    async with FakeSlack() as api:
        settings = Settings.from_env({
            "SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": api.bot_token, "SLACK_API_URL": api.api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/m.sqlite3",
        })
        async with TestClient(TestServer(create_app(settings, desk))) as http:
            yield SlackSender(http, SECRET)


EVENT_FIXTURES = {
    "app_mention": "app_mention", "message.im": "message_im", "message.channels": "message_channels",
    "app_home_opened": "app_home_opened", "app_uninstalled": "app_uninstalled", "tokens_revoked": "tokens_revoked",
    "assistant_thread_started": "assistant_thread_started",
}


async def test_bolt_handles_every_declared_command(manifest: dict, sender: SlackSender):
    for entry in manifest["features"]["slash_commands"]:
        body = load_fixture("slash_command")
        body.update(command=entry["command"], text="help")
        response = await sender.command(body)
        assert response.status == 200, entry["command"]
        assert json.loads(await response.text())["blocks"], entry["command"]


async def test_bolt_handles_every_declared_event(manifest: dict, sender: SlackSender):
    for subscription in sorted(declared_events(manifest)):
        name = EVENT_FIXTURES.get(subscription)
        if name is None:  # message.groups: a message.channels payload from a private channel
            payload = load_fixture("message_channels")
            payload["event"].update(channel_type="group", channel="G0PRIVATE")
        else:
            payload = load_fixture(name)
        payload["event_id"] = f"Ev0MANIFEST{subscription}"
        response = await sender.event(payload)
        # bolt answers 404 {"error": "unhandled request"} when no listener matched
        assert response.status == 200, (subscription, await response.text())


async def test_an_event_we_do_not_handle_is_unhandled(sender: SlackSender):
    """The control for the test above: bolt really does say 404 for an event no listener takes."""
    payload = load_fixture("app_mention")
    payload["event"]["type"] = "reaction_added"
    payload["event_id"] = "Ev0REACTION"
    response = await sender.event(payload)
    assert response.status == 404
