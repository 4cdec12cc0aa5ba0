"""`/china-filing language zh|en|auto` per channel (and DM), read by the Slack and Teams adapters into
``Request.language``; the other-language button in Slack and Teams; ``chinadesk ask --lang``."""

from __future__ import annotations

import json
import subprocess

from slack_server import load_fixture
from test_cli import CHINADESK

from bot.slack.blockkit import validate_blocks
from bot.store import ChannelSettings, load_migrations
from handlers import Desk, Request

# The `bot`, `teams` (on each engine), `slack_api`, `store` and `connector` fixtures come from conftest.
from tests.conftest import Bot, texts
from tests.connector_server import TeamsHarness, assert_valid_card, submit_data


def test_the_migration_adds_the_column_for_both_backends():
    for backend in ("sqlite", "postgres"):
        found = [m for m in load_migrations(backend) if m.version == 5]
        assert [m.name for m in found] == ["language"]
        assert "ADD COLUMN language" in found[0].sql and "DEFAULT 'auto'" in found[0].sql


async def test_without_a_channel_or_storage_the_command_says_what_to_do_instead(desk: Desk):
    reply = await desk.handle(Request(text="/china-filing language zh"))
    assert reply.kind == "error" and "--lang zh" in reply.text


async def test_setting_changes_the_language_of_the_next_answers(desk: Desk, store):
    here = Desk(library=desk.library, store=store)
    assert (await store.get_channel_settings("text", "C9")).language == "auto"
    reply = await here.handle(Request(text="/china-filing language zh", channel="C9", workspace="T9"))
    assert reply.language == "zh" and reply.title == "语言：中文" and not reply.ephemeral
    assert (await store.get_channel_settings("text", "C9")).language == "zh"
    shown = await here.handle(Request(text="/china-filing language", channel="C9", language="zh"))
    assert "此处的回答语言：中文" in shown.text
    reply = await here.handle(Request(text="/china-filing language english", channel="C9"))
    assert reply.language == "en" and "answer in English" in reply.text
    assert (await store.get_channel_settings("text", "C9")) == ChannelSettings(
        platform="text", channel="C9", workspace="T9", language="en")
    bad = await here.handle(Request(text="/china-filing language klingon", channel="C9"))
    assert bad.kind == "error" and "/china-filing language auto" in bad.text
    assert (await store.get_channel_settings("text", "C9")).language == "en"  # a bad value changes nothing


# ------------------------------------------------------------------------------------------ Slack


async def test_slack_channel_in_chinese_then_the_english_button(bot: Bot):
    response = await bot.command("language zh")
    body = await response.json()
    assert body["response_type"] == "in_channel" and "我将在这里用中文回答" in texts(body["blocks"])

    card = await (await bot.command("mlps")).json()
    validate_blocks(card["blocks"])
    assert card["blocks"][0]["text"]["text"].startswith("网络安全等级保护备案")
    assert "*来源*" in texts(card["blocks"])
    [english] = [e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]
                 if e["value"].endswith("--lang en")]
    assert english["text"]["text"] == "English version"

    click = load_fixture("block_actions_share")
    click["actions"] = [{**click["actions"][0], "action_id": english["action_id"], "value": english["value"]}]
    await bot.action(click)
    await bot.settle()
    [answer] = bot.api.calls_to("response_url")
    blocks = validate_blocks(answer.blocks)
    assert blocks[0]["text"]["text"].startswith("Multi-Level Protection Scheme")
    assert "*Sources*" in texts(blocks) and "*来源*" not in texts(blocks)
    zh_links = [line for line in texts(card["blocks"]).split("\\n") if "http" in line]
    assert zh_links and all(link in texts(blocks) for link in zh_links[:1])


async def test_slack_channel_in_english_answers_a_chinese_command_in_english(bot: Bot):
    await bot.command("language en")
    card = await (await bot.command("等保")).json()
    assert card["blocks"][0]["text"]["text"].startswith("Multi-Level Protection Scheme")
    await bot.command("language auto")
    card = await (await bot.command("等保")).json()
    assert card["blocks"][0]["text"]["text"].startswith("网络安全等级保护备案")


# ------------------------------------------------------------------------------------------ Teams


async def test_teams_chat_in_chinese_then_the_english_button(teams: TeamsHarness):
    (confirm,) = await teams.say("personal_message.json", text="china-filing language zh", id="lang1")
    assert confirm.card["body"][0]["text"] == "语言：中文"
    (sent,) = await teams.say("personal_message.json", text="china-filing mlps", id="lang2")
    card = sent.card
    assert_valid_card(card)
    assert card["body"][0]["text"].startswith("网络安全等级保护备案")
    [english] = [d for d in submit_data(card) if d.get("text", "").endswith("--lang en")]
    (sent,) = await teams.say("submit_command.json", value=english, id="lang3")
    assert sent.card["body"][0]["text"].startswith("Multi-Level Protection Scheme")
    assert_valid_card(sent.card)


# -------------------------------------------------------------------------------------------- CLI


def test_cli_lang_flag():
    def ask(*args: str) -> dict:
        proc = subprocess.run([CHINADESK, "ask", *args, "--json"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    zh, en = ask("/china-filing 等保"), ask("/china-filing 等保", "--lang", "en")
    assert (zh["language"], en["language"]) == ("zh", "en")
    assert zh["title"].startswith("网络安全等级保护备案") and en["title"].startswith("Multi-Level Protection")
    assert zh["sources"] == en["sources"]
    assert ask("/china-filing mlps", "--lang", "zh")["language"] == "zh"
