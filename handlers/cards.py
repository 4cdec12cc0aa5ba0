"""Turn content topics into structured replies (cards and menus): the one place a topic becomes a Reply.

Every card lists its facts by section with a numbered source marker, so a reader can see which
source says what; unverified facts are labelled as such, facts more than a year old show their date,
and regulatory cards carry the guidance-not-advice caveat. Cards are built in English or Chinese
(``lang``): the facts' own Chinese text, the labels and fixed words from content/strings.yaml, the
same sources either way, and a button that shows the other language.
"""

from __future__ import annotations

import datetime as dt

from content.i18n import format_day, format_month, msg, t
from content.loader import Library
from content.schema import SECTION_LABELS, DatedEvent, Fact, Language, Topic, TopicKind, section_label
from handlers.request import Action, MenuItem, Reply, ReplyField, SourceRef, UnknownTopicError, echo

COMMAND_FOR_KIND: dict[TopicKind, str] = {
    "filing": "/china-filing",
    "sector": "/china-sector",
    "platform": "/china-platform",
    "calendar": "/china-sector",  # calendar briefings are reachable from the sector command
}
UNVERIFIED_MARK = t("unverified_mark", "en")
UNVERIFIED_CAVEAT = t("unverified_caveat", "en")
STALE_AFTER_DAYS = 365
LANG_FLAG = "--lang"


def topic_command(topic: Topic) -> str:
    return f"{COMMAND_FOR_KIND[topic.kind]} {topic.id}"


def other_language(lang: Language) -> Language:
    return "en" if lang == "zh" else "zh"


def with_language(command: str, lang: Language) -> str:
    """``command`` pinned to ``lang`` (the router reads ``--lang`` after any command or question)."""
    return f"{command} {LANG_FLAG} {lang}"


def language_switch(command: str, lang: Language) -> Action:
    """The button under a reply in ``lang`` that shows the same reply in the other language."""
    other = other_language(lang)
    return Action(kind="command", label=t(f"switch_to.{other}", lang), value=with_language(command, other))


def share_action(command: str, lang: Language) -> Action:
    """"Share to channel" re-runs ``command`` for the channel: pinned to Chinese when the card is, so the
    channel sees what the user saw (English is what a command without Chinese gives anyway)."""
    return Action(kind="share", label=t("share", lang), value=with_language(command, lang) if lang == "zh" else command)


def is_stale(fact: Fact, today: dt.date | None) -> bool:
    return today is not None and (today - fact.as_of).days > STALE_AFTER_DAYS


class SourceList:
    """Collects the sources a reply cites, numbering each once in order of first use, and writes each fact
    as a reader sees it in ``lang`` (with its date when it is more than a year older than ``today``)."""

    def __init__(self, library: Library, topic: Topic, *, lang: Language = "en", today: dt.date | None = None) -> None:
        self.library = library
        self.topic = topic
        self.lang = lang
        self.today = today
        self.refs: list[SourceRef] = []
        self._index: dict[str, int] = {}
        self.missing_zh = False  # a fact was shown in English on a Chinese card

    def number(self, fact: Fact, topic: Topic | None = None) -> int:
        return self.number_source(topic or self.topic, fact.source)

    def number_source(self, topic: Topic, source_id: str) -> int:
        src = self.library.source_by_id(topic, source_id)
        key = str(src.url)
        if key not in self._index:
            self.refs.append(
                SourceRef(title=src.title, url=key, published=src.published, published_label=src.published_label())
            )
            self._index[key] = len(self.refs)
        return self._index[key]

    def cite(self, fact: Fact, topic: Topic | None = None) -> str:
        """The fact as a reader sees it: text, unverified mark, its date if old, source number."""
        if self.lang == "zh" and not fact.text_zh:
            self.missing_zh = True
        marks = t("unverified_mark", self.lang) if not fact.verified else ""
        if is_stale(fact, self.today):
            marks += t("as_of_mark", self.lang, month=format_month(fact.as_of, self.lang))
        return f"{fact.text_in(self.lang)}{marks} [{self.number(fact, topic)}]"


def resolve(library: Library, text: str, kinds: tuple[TopicKind, ...], command: str) -> Topic:
    """The topic ``text`` names among ``kinds``, or an :class:`UnknownTopicError` with the closest names."""
    for kind in kinds:
        topic = library.find(text, kind)
        if topic is not None:
            return topic
    close = [found for kind in kinds for found in library.suggest(text, kind)][:3]
    what = msg(f"kind.{kinds[0]}")
    hint = msg("full_list_hint", command=command)
    if close:
        names = ", ".join(f"`{topic_command(found)}`" for found in close)
        raise UnknownTopicError(
            msg("unknown_topic_suggest", what=what, name=echo(text), names=names),
            suggestions=[topic_command(found) for found in close], hint=hint,
        )
    raise UnknownTopicError(msg("unknown_topic", what=what, name=echo(text)), hint=hint)


def caveats_for(
    topic_facts: list[Fact], *, regulatory: bool, today: dt.date, lang: Language = "en",
) -> list[str]:
    caveats = []
    if regulatory:
        caveats.append(t("legal_caveat", lang))
    if any(not f.verified for f in topic_facts):
        caveats.append(t("unverified_caveat", lang))
    stale = [f.as_of for f in topic_facts if is_stale(f, today)]
    if stale:
        caveats.append(t("stale_caveat", lang, month=format_month(min(stale), lang)))
    return caveats


def topic_title(topic: Topic, lang: Language) -> str:
    """``English (中文)`` on an English card, ``中文（English）`` on a Chinese one."""
    if not topic.title_zh:
        return topic.title
    return f"{topic.title_zh}（{topic.title}）" if lang == "zh" else f"{topic.title} ({topic.title_zh})"


def event_when(event: DatedEvent, lang: Language) -> str:
    """``Sat 6 Feb 2027`` / ``every year on 18 Jun`` (``2027年2月6日（周六）`` / ``每年6月18日``)."""
    if event.date is not None:
        return format_day(event.date, lang)
    month, day = (int(p) for p in (event.month_day or "01-01").split("-"))
    sample = dt.date(2024, month, day)  # a leap year: 02-29 exists
    shown = f"{month}月{day}日" if lang == "zh" else f"{day} {sample:%b}"
    return t("every_year_on", lang, day=shown)


def _link_lines(topics: list[Topic], lang: Language) -> str:
    return "\n".join(f"• {t('label_value', lang, label=topic.title_in(lang), value=topic_command(topic))}"
                     for topic in topics)


def topic_card(library: Library, topic: Topic, *, today: dt.date, lang: Language = "en") -> Reply:
    """The full briefing card for a filing, sector, platform or calendar topic, in ``lang``."""
    sources = SourceList(library, topic, lang=lang, today=today)
    summary = sources.cite(topic.summary)
    fields: list[ReplyField] = []
    shown: list[Fact] = [topic.summary]
    estimates = False
    for section in SECTION_LABELS[topic.kind]:  # the schema's order: the order readers expect
        if section == "summary":
            continue
        lines: list[str] = []
        facts = list(topic.sections.get(section, []))
        if section == "deadline" and topic.deadline is not None:
            facts.insert(0, topic.deadline.fact)
        lines += [sources.cite(f) for f in facts]
        if section == "follow_on":
            lines += [t("label_value", lang, label=step.name_in(lang), value=sources.cite(step.fact))
                      for step in topic.follow_on]
            facts += [step.fact for step in topic.follow_on]
        if section == "dates":
            for event in topic.events:
                when = t("event_date_line", lang, title=event.title_in(lang), date=event_when(event, lang))
                mark = t("estimate_mark", lang) if event.estimate else ""
                lines.append(f"{when}{mark} — {sources.cite(event.fact)}")
                facts.append(event.fact)
                estimates |= event.estimate
        if not lines:
            continue
        shown.extend(facts)
        fields.append(
            ReplyField(
                label=section_label(topic.kind, section, lang),
                value="\n".join(f"• {line}" for line in lines),
                unverified=all(not f.verified for f in facts),
            )
        )
    # Links both ways (derived once by the Library): what applies to a sector, what a filing concerns.
    across: tuple[TopicKind, ...] = ("sector", "platform") if topic.kind == "filing" else ("filing",)
    linked = library.linked(topic, *across) if topic.kind != "calendar" else []
    if linked:
        label = t("concerns" if topic.kind == "filing" else "filings_that_apply", lang)
        fields.append(ReplyField(label=label, value=_link_lines(linked, lang)))
    others = [library.topics[tid] for tid in library.links.get(topic.id, ()) if library.topics[tid] not in linked]
    checklist = [
        step.text_in(lang) + (f" [{sources.number_source(topic, step.source)}]" if step.source else "")
        for step in topic.next_steps
    ]
    as_of = (min(f.as_of for f in shown), max(f.as_of for f in shown))
    caveats = caveats_for(shown, regulatory=topic.kind == "filing", today=today, lang=lang)
    if estimates:
        caveats.append(t("event_estimate_caveat", lang))
    if sources.missing_zh:
        caveats.append(t("missing_zh_caveat", lang))
    command = topic_command(topic)
    reply = Reply(
        kind=topic.kind,
        title=topic_title(topic, lang),
        text="",
        summary=summary,
        topic=topic.id,
        fields=fields,
        checklist=checklist,
        sources=sources.refs,
        caveats=caveats,
        related=[topic_command(o) for o in others],
        actions=[share_action(command, lang), language_switch(command, lang)],
        language=lang,
    )
    extra: dict = {}
    if topic.kind == "filing" and topic.deadline is not None:
        extra["deadline_usage"] = f"{command} from YYYY-MM-DD"
    text = library.render(topic.kind, lang=lang, reply=reply, as_of=as_of, **extra)
    return reply.model_copy(update={"text": text})


def menu(library: Library, kind: TopicKind, *, lang: Language = "en", intro: str | None = None) -> Reply:
    topics = sorted(library.of_kind(kind), key=lambda topic: topic.title.casefold())
    if kind == "sector":  # calendar briefings (618, Double 11...) sit with the sectors
        topics += sorted(library.of_kind("calendar"), key=lambda topic: topic.title.casefold())
    items = [MenuItem(id=topic.id, title=topic.title_in(lang), command=topic_command(topic)) for topic in topics]
    command = COMMAND_FOR_KIND[kind]
    reply = Reply(kind="menu", title=intro or t(f"menu.{kind}", lang), text="", items=items, language=lang,
                  actions=[language_switch(command, lang)])
    text = library.render("menu", lang=lang, reply=reply, command=command)
    return reply.model_copy(update={"text": text})
