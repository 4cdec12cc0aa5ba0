"""Channel Q&A replies: the router's fallback (an answer, or an honest "I don't know"), watch mode and
the ``/china-filing watch`` command."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from content.loader import Library
from handlers.cards import SourceList, caveats_for, topic_command
from handlers.qa.confidence import ANSWER_BAR, WATCH_BAR
from handlers.qa.index import Match, QAIndex
from handlers.qa.query import Query
from handlers.qa.text import QUESTION_MARK, fold, has_cjk, has_cue
from handlers.request import Action, NotAvailableError, Reply, ReplyField, Request, UsageError
from handlers.router import Desk, router

log = logging.getLogger("chinadesk.qa")

# -------------------------------------------------------------------------------------- watch mode


def looks_like_question(index: QAIndex, text: str) -> bool:
    """A question mark, a question word (English or Chinese), or "tell me about"."""
    folded = fold(text)
    if QUESTION_MARK.search(folded):
        return True
    words = folded.split()
    if words and words[0] in index.lexicon.question_cues:
        return True
    return any(has_cue(folded, cue) for cue in index.lexicon.question_cues if has_cjk(cue) or " " in cue)


def mentions_domain(index: QAIndex, query: Query) -> bool:
    """Names a topic, uses a synonym-list term, or a China/regulatory word."""
    if query.named:
        return True
    tokens = {t for c in query.concepts for t in c.forms if c.forms[t] == 1.0}
    if tokens & {t for g in index.group_tokens for t in g}:
        return True
    return any(has_cue(query.text, term) for term in index.lexicon.domain_terms)


# ------------------------------------------------------------------------------------------ replies


def qa_index(desk: Desk) -> QAIndex:
    """The desk's index, built on first use (``build_desk`` builds it at start-up)."""
    if desk.qa is None:
        desk.qa = QAIndex.build(desk.library)
    return desk.qa


def no_answer(desk: Desk, request: Request, confidence: float = 0.0) -> Reply:
    reply = Reply(kind="no_answer", title="I don't have a vetted answer to that", text="", confidence=confidence)
    if request.mode == "watch":
        return reply  # ambient messages we cannot answer get no reply at all
    kinds: dict[str, dict[str, Any]] = {}
    for kind in ("filing", "sector", "platform", "calendar"):
        titles = sorted((t.title for t in desk.library.of_kind(kind)), key=str.casefold)
        if titles:
            kinds[kind] = {"count": len(titles), "examples": titles[:4]}
    return reply.model_copy(update={"text": desk.library.render("no_answer", kinds=kinds)})


def answer_reply(library: Library, match: Match, *, today: Any) -> Reply:
    """The best fact (and up to two that add to it) with sources, dates, caveats and the full card."""
    topic = match.docs[0].topic
    sources = SourceList(library, topic)
    facts = [d.fact for d in match.docs]
    lines = [sources.cite(d.fact, d.topic) for d in match.docs]
    command = topic_command(topic)
    first = match.docs[0]
    ref = f"{topic.id}#{first.section}"
    reply = Reply(
        kind="answer",
        title=f"{topic.title} · {first.label}",
        text="",
        summary=lines[0],
        topic=topic.id,
        fields=[ReplyField(label=d.label, value=line, unverified=not d.fact.verified)
                for d, line in zip(match.docs, lines, strict=True)],
        sources=sources.refs,
        caveats=caveats_for(facts, regulatory=any(d.topic.kind == "filing" for d in match.docs), today=today),
        related=[command],
        actions=[
            Action(kind="command", label="Full card", value=command),
            Action(kind="feedback_up", label="👍 Helpful", value=ref),
            Action(kind="feedback_down", label="👎 Not right", value=ref),
        ],
        confidence=match.confidence,
        ephemeral=False,
    )
    dates = sorted({f.as_of for f in facts})
    text = library.render("answer", reply=reply, lines=lines, as_of=dates, command=command)
    return reply.model_copy(update={"text": text})


@router.fallback
async def answer(request: Request, desk: Desk) -> Reply:
    """Free text from a mention, DM, the CLI or a watched channel."""
    index = qa_index(desk)
    watch = request.mode == "watch"
    if watch and not looks_like_question(index, request.text):
        return no_answer(desk, request)
    match = index.match(request.text)
    if watch and not mentions_domain(index, match.query):
        return no_answer(desk, request, match.confidence)
    bar = WATCH_BAR if watch else ANSWER_BAR
    if not match.docs or match.confidence < bar:
        return no_answer(desk, request, match.confidence)
    return answer_reply(desk.library, match, today=request.today())


# ------------------------------------------------------------------------------------ watch command


@router.subcommand(
    "/china-filing", "watch", usage="/china-filing watch on|off",
    summary="answer questions about these topics in this channel (in a thread)",
)
async def watch(request: Request, desk: Desk, args: str) -> Reply:
    word = args.strip().casefold()
    if word not in ("on", "off"):
        raise UsageError("Say `/china-filing watch on` or `/china-filing watch off`.")
    on = word == "on"
    store = desk.store
    if store is None or not hasattr(store, "set_channel_watch"):
        raise NotAvailableError("Question watching needs the bot's storage, which this deployment doesn't have.")
    if not request.channel:
        raise NotAvailableError("Question watching works in a channel: run this command in the channel to watch.")
    result = store.set_channel_watch(request.platform, request.workspace, request.channel, on)
    if inspect.isawaitable(result):
        await result
    if on:
        text = ("Question watching is on in this channel. When someone asks a question about China filings, "
                "sectors, platforms or the trading calendar that I can answer from vetted sources, I'll reply "
                "in a thread. Turn it off with /china-filing watch off.")
    else:
        text = "Question watching is off in this channel. You can still mention me or send me a direct message."
    # A channel setting, like reminders and subscriptions: kind "reminder", not a Q&A answer.
    return Reply(kind="reminder", title="Question watching " + ("on" if on else "off"), text=text, ephemeral=False)


