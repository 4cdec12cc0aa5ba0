"""Block Kit rendering: every real card is valid Block Kit, limits hold for any reply, escaping is idempotent."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.slack.blockkit import (
    ACTION_COMMAND,
    ACTION_FEEDBACK_UP,
    ACTION_SHARE,
    FIELD_MAX,
    HEADER_MAX,
    MAX_BLOCKS,
    MAX_HOME_BLOCKS,
    SECTION_MAX,
    FeedbackRef,
    HomeCommand,
    escape,
    link,
    render_home,
    render_reply,
    split_text,
    validate_blocks,
)
from handlers.cards import topic_card
from handlers.request import Action, Reply, ReplyDeadline, ReplyField, ReplyStep, SourceRef, echo

TODAY = dt.date(2025, 9, 22)


def all_texts(blocks: list[dict]) -> list[str]:
    """Every text string in the blocks (section text and fields, context elements, headers, buttons)."""
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text"):
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return out


def assert_within_limits(blocks: list[dict], max_blocks: int = MAX_BLOCKS) -> None:
    validate_blocks(blocks)
    assert len(blocks) <= max_blocks
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_MAX
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= SECTION_MAX
            for f in block.get("fields", []):
                assert len(f["text"]) <= FIELD_MAX
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "context":
            assert len(block["elements"]) <= 10


# ------------------------------------------------------------------------------------- escaping


def test_escape_is_idempotent_on_entities():
    assert escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape(escape("a & b < c > d")) == "a &amp; b &lt; c &gt; d"
    assert escape(echo("<!channel> & co")) == "&lt;!channel&gt; &amp; co"  # echo() output passes unchanged
    assert escape("&copy; &#60;") == "&amp;copy; &amp;#60;"  # only Slack's three entities are kept


@given(st.text())
def test_escape_idempotent_and_leaves_no_markup(text: str):
    once = escape(text)
    assert escape(once) == once
    assert "<" not in once and ">" not in once


def test_links_are_built_from_escaped_parts():
    assert link("https://x.cn/a?b=1&c=2", "A <b> | c") == "<https://x.cn/a?b=1&amp;c=2|A &lt;b&gt; ¦ c>"
    assert link("https://x.cn/a|b>c", "t") == "<https://x.cn/a%7Cb&gt;c|t>"
    assert link("javascript:alert(1)", "t") == "t"  # never a link to anything but http(s)/mailto


# --------------------------------------------------------------------------------------- cards


def test_every_real_card_renders_within_limits(library):
    for topic in library.topics.values():
        reply = topic_card(library, topic, today=TODAY)
        message = render_reply(reply, feedback=FeedbackRef(topic.id, "question?"))
        assert_within_limits(message.blocks)
        assert message.blocks[0]["type"] == "header"
        dump = json.dumps(message.blocks, ensure_ascii=False)
        for number, source in enumerate(reply.sources, start=1):
            assert f"[{number}] <{escape(source.url)}|" in dump


async def test_deadline_card_has_dated_deadline_steps_and_buttons(ask):
    reply = await ask("/china-filing facial-recognition from 2025-09-20", platform="slack")
    message = render_reply(reply)
    assert_within_limits(message.blocks)
    dump = json.dumps(message.blocks, ensure_ascii=False)
    assert ":date: *Due Thu 6 Nov 2025*" in dump
    assert "*How it was counted*" in dump
    assert "by Thu 27 Nov 2025" in dump  # a follow-on step, dated
    actions = {e["action_id"]: e for b in message.blocks if b["type"] == "actions" for e in b["elements"]}
    assert actions[ACTION_SHARE]["value"] == "/china-filing facial-recognition from 2025-09-20"
    assert actions[ACTION_COMMAND]["value"].startswith("/china-filing remind facial-recognition")
    assert ACTION_FEEDBACK_UP not in actions  # no question to tie a vote to


async def test_menus_help_and_errors_render_their_text(ask):
    for text in ("/china-filing", "/china-sector", "/china-filing help", "/china-filing no-such-thing"):
        reply = await ask(text, platform="slack")
        message = render_reply(reply)
        assert_within_limits(message.blocks)
        assert len(message.blocks) >= 2, text


async def test_user_text_in_an_error_arrives_escaped_once(ask):
    reply = await ask("/china-filing <!channel> & co", platform="slack")
    dump = json.dumps(render_reply(reply).blocks)
    assert "<!channel>" not in dump
    assert "&lt;!channel&gt; &amp; co" in dump
    assert "&amp;lt;" not in dump and "&amp;amp;" not in dump  # not double-escaped


def huge_reply(n: int = 120) -> Reply:
    return Reply(
        kind="filing",
        title="A very long title " * 20,
        text="x",
        summary="Summary " * 800,
        fields=[ReplyField(label=f"Field {i}", value=("word " * 900) if i % 3 == 0 else f"short {i}")
                for i in range(n)],
        deadline=ReplyDeadline(start=TODAY, due=TODAY, rule="30 working days", unit="working_days", amount=30,
                               counted=["a line"] * 200),
        steps=[ReplyStep(label=f"Step {i}", text="do the thing " * 30, date=TODAY) for i in range(n)],
        sources=[SourceRef(title=f"Source {i} <&>", url=f"https://example.cn/{i}?a=1&b=2", published=TODAY)
                 for i in range(n)],
        caveats=[f"Caveat {i}" for i in range(25)],
        related=[f"/china-filing topic-{i}" for i in range(40)],
        actions=[Action(kind="share", label="Share to channel", value="/china-filing huge")],
    )


def test_a_huge_reply_degrades_to_fifty_valid_blocks_with_a_pointer():
    message = render_reply(huge_reply(), feedback=FeedbackRef("huge", "q"))
    assert_within_limits(message.blocks)
    dump = json.dumps(message.blocks, ensure_ascii=False)
    assert "… (full card: `/china-filing huge`)" in dump
    assert message.blocks[-1]["type"] == "actions"  # the buttons survive the cut
    assert len(message.text) <= 3000


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(min_size=1, max_size=400),
    summary=st.text(max_size=5000),
    values=st.lists(st.text(max_size=4000), max_size=30),
    caveats=st.lists(st.text(min_size=1, max_size=300), max_size=15),
)
def test_any_reply_renders_within_limits(title, summary, values, caveats):
    reply = Reply(
        kind="sector", title=title, text=summary or "t", summary=summary,
        fields=[ReplyField(label=f"L{i}", value=v) for i, v in enumerate(values)], caveats=caveats,
        actions=[Action(kind="share", label="Share to channel", value="/china-sector x")],
    )
    message = render_reply(reply, feedback=FeedbackRef("x", summary[:100]))
    assert_within_limits(message.blocks)
    for text in all_texts(message.blocks):
        assert "<!" not in text


@given(st.text(max_size=9000), st.integers(min_value=50, max_value=3000))
def test_split_text_respects_the_limit(text: str, limit: int):
    chunks = split_text(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)


# ---------------------------------------------------------------------------------------- home


def test_home_view_stays_within_limits_with_many_items():
    from bot.store import Subscription, TrackedDeadline

    now = dt.datetime(2025, 9, 22, tzinfo=dt.UTC)
    tracked = [TrackedDeadline(i, "slack", "T1", f"C{i}", "pipia", "2025-09-20", TODAY, None, "U1", now)
               for i in range(200)]
    subs = [Subscription(i, "slack", "T1", f"C{i}", "all", "U1", now) for i in range(200)]
    view = render_home(commands=[HomeCommand("/china-filing", "filings", [("/china-filing help", "help")])],
                       tracked=tracked, subscriptions=subs, today=TODAY)
    assert view["type"] == "home"
    assert_within_limits(view["blocks"], MAX_HOME_BLOCKS)
    assert "…and 175 more" in json.dumps(view["blocks"], ensure_ascii=False)


@pytest.mark.parametrize("question", ["plain", "<!channel> & <@U1>", "引号 “x” \\ \"y\"", "x" * 5000])
def test_feedback_value_round_trips_and_carries_no_markup(question: str):
    ref = FeedbackRef("topic-a", question)
    value = ref.value()
    assert len(value) <= 2000 and "<" not in value and ">" not in value and "&" not in value
    back = FeedbackRef.parse(value)
    assert back.topic == "topic-a" and question.startswith(back.question)
