"""Malformed and hostile input: a friendly reply, nothing echoed raw, nothing evaluated."""

from __future__ import annotations

import pytest


async def test_from_without_topic_or_date(ask):
    reply = await ask("/china-filing from")
    assert reply.kind == "error"
    assert "Which filing" in reply.text


async def test_impossible_date(ask):
    reply = await ask("/china-filing facial-recognition from 2025-02-30")
    assert reply.kind == "error"
    assert "not a real date" in reply.text and "28 days" in reply.text


async def test_unknown_topic_with_impossible_date(ask):
    reply = await ask("/china-filing x from 2025-02-30")
    assert reply.kind == "error"
    assert "Traceback" not in reply.text


async def test_unreadable_date(ask):
    reply = await ask("/china-filing face from next tuesday-ish")
    assert reply.kind == "error"
    assert "YYYY-MM-DD" in reply.text


async def test_huge_text_is_refused_politely(ask):
    reply = await ask("a" * 100_000)
    assert reply.kind == "error"
    assert "100,000 characters" in reply.text
    assert len(reply.text) < 600


async def test_huge_command_is_refused_politely(ask):
    reply = await ask("/china-filing " + "face " * 20_000)
    assert reply.kind == "error"


async def test_binary_is_refused(ask):
    reply = await ask("\x00\x01\x02\xff" * 50)
    assert reply.kind == "error"
    assert "binary" in reply.text


async def test_control_characters_are_stripped(ask):
    reply = await ask("/china-filing fa\x07ce\x1b[31m")
    assert "\x07" not in reply.text and "\x1b" not in reply.text


@pytest.mark.parametrize(
    "text", ["/china-filing <!channel>", "/china-platform <!here|here> <@U123>", "<!channel> hello"]
)
async def test_mentions_are_never_echoed_raw(ask, text):
    reply = await ask(text, mode="direct")
    assert reply.kind in ("error", "no_answer")
    assert "<!" not in reply.text and "<@" not in reply.text


@pytest.mark.parametrize(
    "text",
    [
        "/china-filing {{ 7*7 }}",
        "{{ 7*7 }}",
        "/china-sector {% for x in range(3) %}x{% endfor %}",
        "/china-filing {{ config.__class__ }}",
    ],
)
async def test_template_syntax_is_never_evaluated(ask, text):
    reply = await ask(text, mode="direct")
    assert reply.kind in ("error", "no_answer")
    assert "49" not in reply.text
    assert "xxx" not in reply.text
    assert "class" not in reply.text or "{{ config.__class__ }}" in reply.text
