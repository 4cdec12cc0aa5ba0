"""Slack payloads -> plain text and keys: mentions and links unwrapped, conversation and workspace keys,
checks that a parsed body is shaped like Slack's (bolt would otherwise fail deep inside a listener)."""

from __future__ import annotations

import logging
import re
from typing import Any

from bot.slack.blockkit import (
    ACTION_SHARE,
)

log = logging.getLogger("chinadesk.slack")
PLATFORM = "slack"


# ------------------------------------------------------------------------------------ translating


_ANGLE = re.compile(r"<([^<>]*)>")
_SPECIAL = ("channel", "here", "everyone")


def slack_to_plain(text: str, bot_user_id: str | None = None) -> str:
    """Slack message markup -> the plain text a person typed.

    Mentions of the bot are dropped; ``<@U1>`` becomes ``@U1``; ``<!channel>`` becomes the words
    ``@channel`` (plain text never pings; the renderer escapes it again anyway); links become their
    label or URL; Slack's ``&amp; &lt; &gt;`` are decoded (the core escapes what it echoes back).
    """

    def plain(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            return "" if bot_user_id and target[1:] == bot_user_id else "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            name = target[1:].split("^", 1)[0]
            if name in _SPECIAL:
                return "@" + name
            return label or "@" + name
        return label or target

    text = _ANGLE.sub(plain, text or "")
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())


# A message that tags a person or a group (<@U1>, <!here>, <!subteam^S1>) is addressed to them.
ADDRESSED = re.compile(r"<[@!][^<>]*>")


def conversation_key(event: dict[str, Any]) -> str:
    """The conversation a message belongs to, for follow-ups: its thread (the root message's ts; a
    top-level message starts its own). In the app's DM too: the agent experience makes each thread one
    conversation, and the answers have always been posted in the thread of the question."""
    channel = event.get("channel") or ""
    return f"{channel}:{event.get('thread_ts') or event.get('ts')}"


def workspace_key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False) -> str:
    """The store's ``workspace`` for a Slack install: the team, or the org for org-wide installs."""
    if is_enterprise_install and enterprise_id:
        return enterprise_id
    return team_id or enterprise_id or "unknown"


def team_of(body: dict[str, Any]) -> str | None:
    """The workspace a payload comes from (events, commands and interactivity spell it differently)."""
    team = body.get("team")
    return (
        body.get("team_id")
        or (team.get("id") if isinstance(team, dict) else None)
        or (body.get("user") or {}).get("team_id")
        or body.get("enterprise_id")
    )


def malformed_reason(body: Any) -> str | None:
    """Why a parsed Slack body cannot be one of Slack's payloads (None: it can)."""
    if not isinstance(body, dict):
        return "body is not an object"
    for key in ("event", "team", "user", "channel", "container", "authorizations"):
        value = body.get(key)
        if value is not None and not isinstance(value, dict | str | list):
            return f"{key} has the wrong type"
    event = body.get("event")
    if event is not None and not isinstance(event, dict):
        return "event is not an object"
    actions = body.get("actions")
    if actions is not None and (not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions)):
        return "actions is not a list of objects"
    if isinstance(event, dict):
        wrong = _not_text(event, _EVENT_TEXT_FIELDS)
        if wrong:
            return f"event.{wrong} is not a string"
        if event.get("type") == "app_home_opened" and not event.get("user"):
            return "app_home_opened without a user"
    for action in actions or []:
        wrong = _not_text(action, ("action_id", "value"))
        if wrong:
            return f"action {wrong} is not a string"
        if action.get("action_id") == ACTION_SHARE and not channel_of(body):
            return "share without a channel"
    return None


# The fields of an event the listeners read as text: a list or an object there is not Slack's.
_EVENT_TEXT_FIELDS = ("type", "subtype", "user", "channel", "channel_type", "text", "ts", "thread_ts", "tab")


def _not_text(payload: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    """The first of ``fields`` that ``payload`` has with a value other than a string."""
    return next((k for k in fields if payload.get(k) is not None and not isinstance(payload[k], str)), None)


def channel_of(body: dict[str, Any]) -> str | None:
    """The conversation an interaction happened in (``channel.id``, else the container's)."""
    channel, container = body.get("channel"), body.get("container")
    found = (channel.get("id") if isinstance(channel, dict) else None) or (
        container.get("channel_id") if isinstance(container, dict) else None)
    return found if isinstance(found, str) and found else None


ESCAPED_SURROGATE = re.compile(r"(?:\\|%5[cC])u[dD][89a-fA-F]")  # \ud800 in JSON, %5Cud800 in a form
_SURROGATE = re.compile("[\ud800-\udfff]")


def strip_lone_surrogates(body: Any) -> None:
    """Remove, in place, lone UTF-16 surrogates from every string in a parsed payload.

    JSON may carry ``\\ud800`` without its pair; Python decodes it to a string no UTF-8 encoder accepts,
    which would fail (or be echoed) when the answer is sent. Iterative: payloads can be deeply nested.
    """
    stack = [body]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in list(items):
            if isinstance(value, str):
                if _SURROGATE.search(value):
                    node[key] = _SURROGATE.sub("", value)
            elif isinstance(value, dict | list):
                stack.append(value)


