"""Turn content topics into structured replies (cards and menus): the one place a topic becomes a Reply.

Every card lists its facts by section with a numbered source marker, so a reader can see which
source says what; unverified facts are labelled as such, and regulatory cards carry the
guidance-not-advice caveat.
"""

from __future__ import annotations

import datetime as dt

from content.loader import Library
from content.schema import SECTION_LABELS, Fact, Topic, TopicKind
from handlers.request import LEGAL_CAVEAT, Action, MenuItem, Reply, ReplyField, SourceRef, UnknownTopicError, echo

COMMAND_FOR_KIND: dict[TopicKind, str] = {
    "filing": "/china-filing",
    "sector": "/china-sector",
    "platform": "/china-platform",
    "calendar": "/china-sector",  # calendar briefings are reachable from the sector command
}
UNVERIFIED_MARK = " (unverified)"
UNVERIFIED_CAVEAT = (
    "Items marked (unverified) rest on a single source we could not confirm elsewhere; treat them as "
    "indicative, not certain."
)
STALE_AFTER_DAYS = 365


def topic_command(topic: Topic) -> str:
    return f"{COMMAND_FOR_KIND[topic.kind]} {topic.id}"


class SourceList:
    """Collects the sources a reply cites, numbering each once in order of first use."""

    def __init__(self, library: Library, topic: Topic) -> None:
        self.library = library
        self.topic = topic
        self.refs: list[SourceRef] = []
        self._index: dict[str, int] = {}

    def number(self, fact: Fact, topic: Topic | None = None) -> int:
        topic = topic or self.topic
        src = self.library.source(topic, fact)
        key = str(src.url)
        if key not in self._index:
            self.refs.append(
                SourceRef(title=src.title, url=key, published=src.published, published_label=src.published_label())
            )
            self._index[key] = len(self.refs)
        return self._index[key]

    def cite(self, fact: Fact, topic: Topic | None = None) -> str:
        """The fact as a reader sees it: text, unverified mark, source number."""
        mark = UNVERIFIED_MARK if not fact.verified else ""
        return f"{fact.text}{mark} [{self.number(fact, topic)}]"


KIND_NAMES = {"filing": "filing", "sector": "sector briefing", "platform": "platform", "calendar": "calendar briefing"}


def resolve(library: Library, text: str, kinds: tuple[TopicKind, ...], command: str) -> Topic:
    """The topic ``text`` names among ``kinds``, or an :class:`UnknownTopicError` with the closest names."""
    for kind in kinds:
        topic = library.find(text, kind)
        if topic is not None:
            return topic
    close = [t for kind in kinds for t in library.suggest(text, kind)][:3]
    what = KIND_NAMES[kinds[0]]
    hint = f"Type `{command}` for the full list."
    if close:
        names = ", ".join(f"`{topic_command(t)}`" for t in close)
        raise UnknownTopicError(
            f"I don't have a {what} called “{echo(text)}”. Did you mean {names}?",
            suggestions=[topic_command(t) for t in close], hint=hint,
        )
    raise UnknownTopicError(f"I don't have a {what} called “{echo(text)}”.", hint=hint)


def caveats_for(topic_facts: list[Fact], *, regulatory: bool, today: dt.date) -> list[str]:
    caveats = []
    if regulatory:
        caveats.append(LEGAL_CAVEAT)
    if any(not f.verified for f in topic_facts):
        caveats.append(UNVERIFIED_CAVEAT)
    oldest = min((f.as_of for f in topic_facts), default=today)
    if (today - oldest).days > STALE_AFTER_DAYS:
        caveats.append(f"Some of this is more than a year old (oldest fact as of {oldest.isoformat()}).")
    return caveats


def topic_card(library: Library, topic: Topic, *, today: dt.date) -> Reply:
    """The full briefing card for a filing, sector, platform or calendar topic."""
    sources = SourceList(library, topic)
    summary = sources.cite(topic.summary)
    fields: list[ReplyField] = []
    shown: list[Fact] = [topic.summary]
    for section, label in SECTION_LABELS[topic.kind].items():
        if section == "summary":
            continue
        facts = list(topic.sections.get(section, []))
        if section == "deadline" and topic.deadline is not None:
            facts.insert(0, topic.deadline.fact)
        if section == "follow_on":
            facts.extend(step.fact for step in topic.follow_on)
        if section == "dates":
            facts.extend(event.fact for event in topic.events)
        if not facts:
            continue
        shown.extend(facts)
        fields.append(
            ReplyField(
                label=label,
                value="\n".join(f"• {sources.cite(f)}" for f in facts),
                unverified=all(not f.verified for f in facts),
            )
        )
    as_of = (min(f.as_of for f in shown), max(f.as_of for f in shown))
    related = [topic_command(library.topics[r]) for r in topic.related if r in library.topics]
    reply = Reply(
        kind=topic.kind,
        title=topic.title + (f" ({topic.title_zh})" if topic.title_zh else ""),
        text="",
        summary=summary,
        topic=topic.id,
        fields=fields,
        sources=sources.refs,
        caveats=caveats_for(shown, regulatory=topic.kind == "filing", today=today),
        related=related,
        actions=[Action(kind="share", label="Share to channel", value=topic_command(topic))],
    )
    extra: dict = {}
    if topic.kind == "filing" and topic.deadline is not None:
        extra["deadline_usage"] = f"{topic_command(topic)} from YYYY-MM-DD"
    text = library.render(topic.kind, reply=reply, as_of=as_of, **extra)
    return reply.model_copy(update={"text": text})


def menu(library: Library, kind: TopicKind, *, intro: str) -> Reply:
    topics = sorted(library.of_kind(kind), key=lambda t: t.title.casefold())
    if kind == "sector":  # calendar briefings (618, Double 11...) sit with the sectors
        topics += sorted(library.of_kind("calendar"), key=lambda t: t.title.casefold())
    items = [MenuItem(id=t.id, title=t.title, command=topic_command(t)) for t in topics]
    reply = Reply(kind="menu", title=intro, text="", items=items)
    return reply.model_copy(update={"text": library.render("menu", reply=reply, command=COMMAND_FOR_KIND[kind])})


def render_samples(library: Library, *, today: dt.date) -> list[str]:
    """Render every template for every topic it applies to; return the problems found (for `content check`)."""
    # Imported here to avoid a cycle: filing.py builds on this module.
    from handlers.filing import deadline_reply

    problems: list[str] = []
    for topic in library.topics.values():
        try:
            topic_card(library, topic, today=today)
            if topic.deadline is not None:
                start = dt.datetime(2025, 9, 20, 9, 0, tzinfo=dt.UTC) if topic.deadline.unit == "hours" else dt.date(
                    2025, 9, 20
                )
                deadline_reply(library, topic, start, today=today)
        except Exception as exc:  # report every broken topic, not just the first
            problems.append(f"{topic.id}: template failed: {type(exc).__name__}: {exc}")
    for kind in ("filing", "sector", "platform"):
        try:
            menu(library, kind, intro="check")
        except Exception as exc:
            problems.append(f"menu for {kind}: {type(exc).__name__}: {exc}")
    return problems
