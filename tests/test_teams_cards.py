"""Adaptive Card rendering (bot/teams/cards.py) and Teams settings, without HTTP.

Every card the core can produce is validated against the official Adaptive Card 1.5 schema
(tests/fixtures/teams/adaptive-card-1.5.schema.json, see the README there).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from bot.config import ConfigError, Settings, TeamsSettings
from bot.teams.cards import FeedbackContext, inert, md, md_url, render_card
from handlers import Desk
from handlers.cards import topic_card
from handlers.request import Reply, ReplyField
from tests.conftest import NOW
from tests.connector_server import SCHEMA, assert_valid_card, facts, texts


def test_the_schema_really_rejects_invalid_cards():
    good = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "hi"}]}
    assert_valid_card(good)
    for bad in (
        {**good, "body": [{"type": "TextBlock", "text": "hi", "colour": "red"}]},  # unknown property
        {**good, "body": [{"type": "TextBlock"}]},  # text is required
        {**good, "body": [{"type": "Carousel", "pages": []}]},  # not an element in 1.5
        {**good, "actions": [{"type": "Action.OpenUrl", "title": "x"}]},  # url is required
    ):
        assert list(SCHEMA.iter_errors(bad)), bad


def test_every_topic_card_is_valid_and_small_enough(desk: Desk):
    today = NOW.date()
    for topic in desk.library.topics.values():
        reply = topic_card(desk.library, topic, today=today)
        card = render_card(reply, feedback=FeedbackContext(question=topic.id, kind=reply.kind))
        assert_valid_card(card)
        assert len(json.dumps(card, ensure_ascii=False).encode()) < 24_000, topic.id  # Teams caps a message ~28 KB


@pytest.mark.parametrize("text", [
    "/china-filing", "/china-sector", "/china-platform", "/china-filing help", "/china-filing nonsense",
    "/china-filing facial-recognition from 2025-02-30", "what is the 618 festival?", "tell me a joke",
    "/china-filing facial-recognition from 2025-09-20",
])
async def test_every_kind_of_reply_renders_a_valid_card(ask, text: str):
    reply = await ask(text, platform="teams", mode="direct")
    assert_valid_card(render_card(reply, feedback=FeedbackContext(question=text, kind=reply.kind)))


def test_long_fields_leave_the_factset_and_short_ones_stay():
    reply = Reply(kind="filing", title="T", text="", summary="S", fields=[
        ReplyField(label="Authority", value="CAC"),
        ReplyField(label="Documents", value="• one\n• two"),
        ReplyField(label="Penalty", value="x" * 200, unverified=True),
    ])
    card = render_card(reply)
    assert_valid_card(card)
    assert facts(card) == {"Authority": "CAC"}
    shown = texts(card)
    assert "Documents" in shown and "• one" in shown and "• two" in shown
    assert "Penalty (unverified)" in shown


def test_feedback_buttons_carry_what_the_store_needs():
    reply = Reply(kind="answer", title="T", text="x", summary="S", topic="xiaohongshu")
    card = render_card(reply, feedback=FeedbackContext(question="q" * 5000, kind="answer"))
    up, down = [a for a in card["actions"] if a["data"].get("action") == "feedback"]
    assert up["type"] == down["type"] == "Action.Submit"
    assert up["data"]["vote"] == "up" and down["data"]["vote"] == "down"
    assert up["data"]["topic"] == "xiaohongshu" and len(up["data"]["question"]) == 1000
    # Errors and menus are not advice: nothing to rate.
    error = render_card(Reply(kind="error", title="E", text="e"), feedback=FeedbackContext(question="q", kind="error"))
    assert "actions" not in error


@pytest.mark.parametrize(("raw", "shown", "is_inert"), [
    ("[x](https://evil.example)", "[x](https://evil.example)", False),
    ("&lt;at&gt;Boss&lt;/at&gt;", "<at>Boss</at>", False),  # echo()'s entities decoded: cards show no HTML
    ("**bold** _it_", "**bold** _it_", False),
    ("Try `/china-filing help`.", "Try /china-filing help.", True),  # no card renders code marks
    ("# heading", "# heading", False),
    ("- item", "- item", False),
    ("1. first", "1. first", False),
    ("a\\b", "a\\b", False),
    ("plain, safe text (with parens) [1]", "plain, safe text (with parens) [1]", True),
    ("上海 2025-05-30 – 5 working days", "上海 2025-05-30 – 5 working days", True),
])
def test_card_text_is_plain_and_markup_goes_where_markdown_is_not_read(raw: str, shown: str, is_inert: bool):
    """No escapes (Teams mobile shows them): text that Markdown would change goes in a RichTextBlock."""
    assert md(raw) == shown and inert(md(raw)) is is_inert
    card = render_card(Reply(kind="error", title="T", text=raw))
    assert_valid_card(card)
    block = card["body"][1]
    if is_inert:
        assert block == {"type": "TextBlock", "text": shown, "wrap": True}
    else:
        assert block["type"] == "RichTextBlock" and block["inlines"] == [{"type": "TextRun", "text": shown}]


def test_links_only_for_web_urls():
    assert md_url("https://example.com/a b(c)") == "https://example.com/a%20b%28c%29"
    assert md_url("javascript:alert(1)") is None
    reply = Reply(kind="filing", title="T", text="", summary="S", sources=[
        {"title": "Bad [title]", "url": "javascript:alert(1)", "published": dt.date(2025, 1, 1)},
        {"title": "Good", "url": "https://example.com/x", "published": dt.date(2025, 2, 1)},
    ])
    shown = texts(render_card(reply))
    assert "[1] Bad [title] (2025-01-01)" in shown  # no link: not a web URL
    assert "[2] [Good](https://example.com/x) (2025-02-01)" in shown
    # A title cannot break out of its link: brackets become parentheses, emphasis characters go.
    odd = render_card(Reply(kind="filing", title="T", text="", summary="S", sources=[
        {"title": "[Update] *Big* news](https://evil.example)", "url": "https://example.com/y",
         "published": dt.date(2025, 3, 1)}]))
    assert "[1] [(Update) Big news)(https://evil.example)](https://example.com/y) (2025-03-01)" in texts(odd)


@pytest.mark.parametrize("engine", ["agents", "botbuilder"])
def test_mentions_are_stripped_using_the_entities(engine: str):
    payload = {"type": "message", "recipient": {"id": "28:bot", "name": "China Desk"}}
    if engine == "agents":
        from microsoft_agents.activity import Activity as AgentsActivity
        from microsoft_agents.hosting.core import TurnContext as AgentsTurnContext

        from bot.teams.common import message_text as common_text

        def activity(text: str, entities: list | None = None) -> Any:
            return AgentsActivity.model_validate({**payload, "text": text, "entities": entities or []})

        def strip(activity: Any) -> str:
            return common_text(activity, AgentsTurnContext.remove_recipient_mention)
    else:
        pytest.importorskip("botbuilder.core", reason="the botbuilder engine needs pip install -e '.[botbuilder]'")
        from botbuilder.schema import Activity

        from bot.teams.activities import message_text as strip

        def activity(text: str, entities: list | None = None) -> Any:
            return Activity().deserialize({**payload, "text": text, "entities": entities or []})

    bot = {"type": "mention", "text": "<at>China Desk</at>", "mentioned": {"id": "28:bot", "name": "China Desk"}}
    assert strip(activity("<at>China Desk</at> filing face", [bot])) == "filing face"
    assert strip(activity("<at>China Desk</at>", [bot])) == ""
    # A renamed bot: the entity says how it was written.
    renamed = {**bot, "text": "<at>Desk</at>"}
    assert strip(activity("<at>Desk</at> china-sector", [renamed])) == "china-sector"
    # No entity at all: a leading mention of the bot's name still goes; so do mentions of other people
    # (an address is not part of a question: issue 12).
    assert strip(activity("<at>China Desk</at> ask <at>Alice</at> about filing")) == "ask about filing"
    assert strip(activity("")) == ""


APP = "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b"
TENANT = "9c4e2b7a-1d3f-4a5b-8c6d-7e8f9a0b1c2d"
SDK = "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__"


def test_teams_settings_local_mode_and_partial_configuration():
    assert TeamsSettings.from_env({}).local_mode
    # Single-tenant by default (Azure creates no new multi-tenant bots since 31 July 2025).
    single = TeamsSettings.from_env({"MICROSOFT_APP_ID": APP.upper(), "MICROSOFT_APP_PASSWORD": "s3cret",
                                     "MICROSOFT_APP_TENANT_ID": TENANT})
    assert not single.local_mode and single.app_type == "SingleTenant" and single.tenant_id == TENANT
    assert "s3cret" not in repr(single)
    legacy = TeamsSettings.from_env({"MICROSOFT_APP_ID": APP, "MICROSOFT_APP_PASSWORD": "x",
                                     "MICROSOFT_APP_TYPE": "multitenant"})
    assert legacy.app_type == "MultiTenant"
    assert Settings.from_env({}).teams.local_mode
    assert Settings.from_env({}).teams.engine == "agents"


def test_the_agents_sdk_names_configure_teams_and_the_old_names_still_work():
    sdk = TeamsSettings.from_env({f"{SDK}CLIENTID": APP, f"{SDK}CLIENTSECRET": "s3cret", f"{SDK}TENANTID": TENANT})
    old = TeamsSettings.from_env({"MICROSOFT_APP_ID": APP, "MICROSOFT_APP_PASSWORD": "s3cret",
                                  "MICROSOFT_APP_TENANT_ID": TENANT})
    assert (sdk.app_id, sdk.tenant_id, sdk.app_type, sdk.auth_type) == (APP, TENANT, "SingleTenant", "ClientSecret")
    assert sdk == old
    msi = TeamsSettings.from_env({f"{SDK}CLIENTID": APP, f"{SDK}TENANTID": TENANT,
                                  f"{SDK}AUTHTYPE": "UserManagedIdentity"})
    assert (msi.app_type, msi.auth_type, msi.app_password) == ("UserAssignedMSI", "UserManagedIdentity", None)
    # The same setting under both names, differently: refused, naming both.
    with pytest.raises(ConfigError, match=f"{SDK}CLIENTID and MICROSOFT_APP_ID"):
        TeamsSettings.from_env({f"{SDK}CLIENTID": APP, "MICROSOFT_APP_ID": "0b5d7f9a-2c4e-4f6a-8b0d-1e3f5a7c9e2b",
                                "MICROSOFT_APP_PASSWORD": "x", "MICROSOFT_APP_TENANT_ID": TENANT})
    assert TeamsSettings.from_env({"TEAMS_ENGINE": "botbuilder"}).engine == "botbuilder"


@pytest.mark.parametrize(("env", "named"), [
    ({"MICROSOFT_APP_PASSWORD": "x"}, "MICROSOFT_APP_ID"),
    ({"MICROSOFT_APP_TENANT_ID": "9c4e2b7a-1d3f-4a5b-8c6d-7e8f9a0b1c2d"}, "MICROSOFT_APP_ID"),
    ({"MICROSOFT_APP_ID": "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b"}, "MICROSOFT_APP_PASSWORD"),
    ({"MICROSOFT_APP_ID": "not-a-guid", "MICROSOFT_APP_PASSWORD": "x"}, "MICROSOFT_APP_ID"),
    ({"MICROSOFT_APP_ID": "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b", "MICROSOFT_APP_PASSWORD": "x",
      "MICROSOFT_APP_TYPE": "SingleTenant"}, "MICROSOFT_APP_TENANT_ID"),
    ({"MICROSOFT_APP_ID": "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b", "MICROSOFT_APP_PASSWORD": "x",
      "MICROSOFT_APP_TYPE": "Bogus"}, "MICROSOFT_APP_TYPE"),
    # Single-tenant by default: without a tenant id the message names the SDK's variable.
    ({"MICROSOFT_APP_ID": "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b", "MICROSOFT_APP_PASSWORD": "x"},
     "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__TENANTID"),
    ({"CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID": "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b"},
     "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTSECRET"),
    ({"CONNECTIONS__SERVICE_CONNECTION__SETTINGS__AUTHTYPE": "Certificate"}, "AUTHTYPE"),
    ({"TEAMS_ENGINE": "bot-framework"}, "TEAMS_ENGINE"),
])
def test_partly_configured_teams_names_the_variable(env: dict[str, str], named: str):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


async def test_no_card_shows_escapes_backticks_or_a_split_sentence(desk: Desk):
    """Cards as a new user first sees them (issue 15 item 4): no backslash escapes or backticks anywhere,
    and the no-answer card's sentence is whole in its heading, not split across heading and text."""
    from handlers import Request

    asked = ["help", "china-filing", "china-sector", "china-platform", "china-filing facial-recognition",
             "china-sector cosmetics-and-personal-care", "china-platform xiaohongshu",
             "filing facial-recognition from 2025-09-20", "how do we sell on xiaohongshu?",
             "what is the airspeed velocity of an unladen swallow?"]
    for text in asked:
        reply = await desk.handle(Request(text=text, platform="teams", now=dt.datetime(2025, 9, 22, 2, tzinfo=dt.UTC)))
        card = render_card(reply)
        shown = texts(card)
        assert not [t for t in shown if "\\" in t or "`" in t], (text, [t for t in shown if "\\" in t or "`" in t])
        if reply.kind == "no_answer":
            # A heading of its own, then the whole sentence (never split across the two).
            assert shown[0] == "No vetted answer"
            assert shown[1].startswith("I don't have a vetted answer to that, and I'd rather say so than guess.")
