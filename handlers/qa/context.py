"""Conversation context: what a thread was just about, so that a follow-up can lean on it.

A follow-up such as "what documents do they need?", "who do we file it with?" or "and if we hit 100k on
3 March?" names no topic. The context of a conversation (a Slack thread or DM, a Teams reply chain or
personal chat, a ``chinadesk ask --thread KEY``) is the topic and section last answered and the last
deadline's filing and trigger date. It lives in the store (so every replica and every CLI process sees
it) and expires after :data:`CONTEXT_TTL`; a follow-up that names another topic wins over it.

The adapters only say which conversation a message belongs to (``Request.thread``) and whether it opened
that conversation (``Request.thread_opener``); reading and writing the context happens here.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from dataclasses import asdict, dataclass
from typing import Any

from handlers.request import Reply, Request

log = logging.getLogger("chinadesk.qa")

CONTEXT_TTL = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Context:
    """What a conversation was last about."""

    topic: str | None = None  # the topic last answered
    section: str | None = None  # ...and the section of its leading fact
    filing: str | None = None  # the last computed deadline's filing
    trigger: str | None = None  # ...and its trigger date (ISO)
    opened_by_question: bool = False  # the conversation began with a question to the bot

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Context:
        known = {k: data.get(k) for k in ("topic", "section", "filing", "trigger")}
        return cls(**{k: str(v) if v is not None else None for k, v in known.items()},
                   opened_by_question=bool(data.get("opened_by_question")))


def has_context_store(store: Any) -> bool:
    return store is not None and hasattr(store, "load_qa_context") and hasattr(store, "save_qa_context")


class MemoryContexts:
    """Contexts in this process only (evaluation and tests); the store keeps them for real conversations."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[dict[str, Any], dt.datetime]] = {}

    async def load_qa_context(self, platform: str, thread: str, now: dt.datetime) -> dict[str, Any] | None:
        row = self._rows.get((platform, thread))
        return dict(row[0]) if row is not None and row[1] > now else None

    async def save_qa_context(
        self, platform: str, thread: str, workspace: str | None, data: dict[str, Any], expires_at: dt.datetime,
    ) -> None:
        self._rows[(platform, thread)] = (dict(data), expires_at)


async def _call(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def load_context(store: Any, request: Request) -> Context | None:
    """The conversation's context, or None (no conversation, no store, nothing said yet, or expired).
    A store that fails costs the context, never the answer."""
    if not request.thread or not has_context_store(store):
        return None
    try:
        data = await _call(store.load_qa_context(request.platform, request.thread, request.now))
    except Exception:
        log.exception("loading the conversation context failed")
        return None
    return Context.from_data(data) if data else None


def next_context(request: Request, reply: Reply, previous: Context | None, section: str | None) -> Context | None:
    """The context after ``reply``: answers and deadlines move it, and so does a "not this point" about a topic
    the thread was not on yet; anything else leaves it as it was."""
    opened = previous.opened_by_question if previous else (request.thread_opener and request.mode != "watch")
    if reply.kind == "deadline" and reply.topic and reply.deadline is not None:
        start = reply.deadline.start
        trigger = (start.date() if isinstance(start, dt.datetime) else start).isoformat()
        return Context(topic=reply.topic, section="deadline", filing=reply.topic, trigger=trigger,
                       opened_by_question=opened)
    if reply.kind == "answer" and reply.topic:
        keep = previous if previous is not None else Context()
        return Context(topic=reply.topic, section=section, filing=keep.filing, trigger=keep.trigger,
                       opened_by_question=opened)
    if reply.kind == "no_answer" and reply.topic and (previous is None or previous.topic != reply.topic):
        # "I cover Kuaishou, but not this point": the conversation is about Kuaishou all the same, so the
        # next question ("who's on it?") follows it.
        return Context(topic=reply.topic, opened_by_question=opened)
    return None


async def save_context(store: Any, request: Request, context: Context | None) -> None:
    if context is None or not request.thread or not has_context_store(store):
        return
    try:
        await _call(store.save_qa_context(request.platform, request.thread, request.workspace, asdict(context),
                                          request.now + CONTEXT_TTL))
    except Exception:
        log.exception("saving the conversation context failed")
