"""Channel Q&A replies: the router's fallback (an answer, or an honest "I don't know"), watch mode and
the ``/china-filing watch`` command."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from typing import TYPE_CHECKING, Any

from content.i18n import t
from content.loader import Library
from content.schema import SECTION_LABELS_ZH, Topic
from handlers.cards import SourceList, caveats_for, topic_command
from handlers.feedback import fact_ref, policy_of, record_unanswered
from handlers.filing import deadline_reply
from handlers.qa.confidence import ANSWER_BAR, INTENT_ONLY_CONFIDENCE, WATCH_BAR
from handlers.qa.context import Context, load_context, next_context, save_context
from handlers.qa.deadlines import DATE_SPAN, absolute_years, deadline_question, looks_dated
from handlers.qa.query import Query
from handlers.qa.text import QUESTION_MARK, fold, has_cjk, has_cue, strip_chatter
from handlers.request import Action, Language, NotAvailableError, Reply, ReplyField, Request, UsageError
from handlers.router import Desk, router

if TYPE_CHECKING:  # the index (numpy, bm25s) is imported only when a question needs it: commands never do
    from handlers.qa.index import Match, QAIndex
    from handlers.qa.semantic import SemanticIndex

log = logging.getLogger("chinadesk.qa")

COMMON_WORD_IDF = 1.0  # a word this common in the packs ("file", "china") says nothing about which fact
# A deadline question that names no filing takes the filing whose deadline rule it matches at least this
# surely (it also gives a date and asks for a deadline, so the bar is below ANSWER_BAR).
DEADLINE_TOPIC_BAR = 0.5
# A follow-up whose words fit another topic's fact better than any of the thread's topic: at most this sure
# (below ANSWER_BAR), so that it gets "I cover <the thread's topic>, but not this point".
ELSEWHERE_IN_THREAD = 0.3
# Intents that are a question's form (who, how long, what documents), not its subject: a follow-up asking one
# of these is answered by the thread topic's fact of that kind. Subject intents ("open a store", "audience")
# are what the question is about, and another topic fitting them better means this topic lacks the point.
KIND_ASKED_COVERAGE = 0.4  # ...when at least this share of its words (by IDF) are the topic's own
FORM_INTENTS = frozenset({"who", "recipient", "applies", "duration", "date", "documents", "penalty", "next",
                          "frequency", "trigger", "threshold", "where", "retention", "audience", "users", "size"})

# -------------------------------------------------------------------------------------- watch mode


def looks_like_question(index: QAIndex, text: str) -> bool:
    """A question mark, a question word (English or Chinese), or "tell me about"."""
    folded = fold(strip_chatter(text))
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
    """The desk's index, built on first use (the server's ``build_desk`` builds it at start-up; the CLI only
    when a question needs it, through the on-disk cache in ``desk.settings["qa_cache_dir"]`` if set)."""
    if desk.qa is None:
        from handlers.qa.cache import load_index

        desk.qa = load_index(desk.library, desk.settings.get("qa_cache_dir"))
    return desk.qa


def qa_semantic(desk: Desk) -> SemanticIndex | None:
    """The optional meaning-level re-ranker (:mod:`handlers.qa.semantic`) when ``desk.settings["qa_semantic"]``
    is ``on`` or ``auto`` (off when missing), the extra is installed and its embeddings are in the cache; never
    built here, for a request (``build_desk`` builds them in the background, ``chinadesk content embed`` ahead)."""
    if desk.semantic is None:
        desk.semantic = False
        from handlers.qa.semantic import available, load_semantic

        if desk.settings.get("qa_semantic", "off") in ("on", "auto") and available():
            semantic = load_semantic(qa_index(desk), desk.settings.get("qa_cache_dir"))
            if semantic is None:
                log.warning("the Q&A re-ranker is on but its embeddings are not built (`chinadesk content embed`): "
                            "answering lexically")
            desk.semantic = semantic or False
    return desk.semantic or None


async def _meaning(desk: Desk, question: str, match: Match) -> Match:
    """A match the lexical path is unsure of, rescued by the re-ranker when it is on and the two agree."""
    semantic = qa_semantic(desk)
    if semantic is None:
        return match
    from handlers.qa.semantic import rescue

    scores = await asyncio.to_thread(semantic.fact_scores, question)  # the model runs without the GIL
    rescued = rescue(qa_index(desk), match, scores)
    if rescued is None:
        return match
    log.debug("re-ranker answered (cosine %.3f, lexical confidence %.2f)", rescued.features["semantic"],
              match.confidence)
    return rescued


def no_answer(desk: Desk, request: Request, confidence: float = 0.0, *, match: Match | None = None,
              language: Language = "en", thread_topic: str | None = None) -> Reply:
    """An honest "I don't know". When the question is clearly about one topic but the fact is unclear,
    it says so and points at that topic's card; when the packs lack that point, it says the topic is
    covered but not this point. Otherwise it lists what it can answer. ``thread_topic``: the topic a
    follow-up that names none leans on (the conversation is about it, so the answer points there)."""
    title = t("no_answer_title", language)
    reply = Reply(kind="no_answer", title=title, text="", confidence=confidence, language=language)
    if request.mode == "watch":
        return reply  # ambient messages we cannot answer get no reply at all
    topic, point_missing = _clear_topic(match)
    if topic is None and thread_topic in desk.library.topics:
        topic, point_missing = desk.library.topics[thread_topic], _point_missing(match)
    if topic is not None:
        command = topic_command(topic)
        name = (topic.title_zh or topic.title) if language == "zh" else _lower_title(topic)
        text = desk.library.render("no_answer", lang=language, kinds={}, topic=name, command=command,
                                   point_missing=point_missing)
        return reply.model_copy(update={"text": text, "topic": topic.id, "suggestions": [command],
                                        "related": [command]})
    kinds: dict[str, dict[str, Any]] = {}
    for kind in ("filing", "sector", "platform", "calendar"):
        titles = sorted((t.title for t in desk.library.of_kind(kind)), key=str.casefold)
        if titles:
            kinds[kind] = {"count": len(titles), "examples": titles[:4]}
    text = desk.library.render("no_answer", lang=language, kinds=kinds, topic=None, command=None,
                               point_missing=False)
    return reply.model_copy(update={"text": text})


def _lower_title(topic: Topic) -> str:
    """"the facial recognition filing", "Xiaohongshu": how a sentence names a topic."""
    title = topic.title.split("(")[0].strip()
    first = title.split(" ", 1)[0]
    if topic.kind == "filing" and not first.endswith("ing") and first not in ("China", "China's", "Chinese"):
        words = title.split(" ")
        lower = len(words) > 1 and words[1][:1].islower()  # "Facial recognition ...", not "Multi-Level Protection"
        return f"the {title[0].lower()}{title[1:]}" if lower else f"the {title}"
    return title


def _clear_topic(match: Match | None) -> tuple[Topic | None, bool]:
    """(the one topic a doubtful question is clearly about, whether the packs lack the point it asks).

    Clear: the question names exactly one topic (or follows one), asks about nothing elsewhere, and
    that topic leads. The point is missing when a distinctive word of the question appears nowhere in
    the topic ("advertising" for Douyin); otherwise the topic has it somewhere but not clearly one fact.
    """
    if match is None or not match.docs or not _names_one_topic(match) or match.features.get("elsewhere"):
        return None, False
    topic = match.docs[0].topic
    if match.features.get("names_topic", 0.0) < 1.0:
        return None, False
    return topic, _point_missing(match)


def _names_one_topic(match: Match) -> bool:
    """The question names one topic, or one whose name holds the others' ("the generative AI filing" also
    says "AI", the sector's name)."""
    hits = match.query.name_hits
    if len(match.query.named) <= 1:
        return len(match.query.named) == 1
    names = [n for ti in match.query.named for n in hits.get(ti, ())]
    return any(all(any(other in n for n in hits.get(ti, ())) for other in names) for ti in match.query.named)


def _point_missing(match: Match | None) -> bool:
    """A distinctive word of the question appears nowhere in the topic, or only in passing."""
    if match is None:
        return False
    missing = match.features.get("topic_coverage", 1.0) < 0.999 and match.features.get("unmatched", 0.0) > 0.3
    return missing or bool(match.features.get("in_passing"))


def answer_reply(library: Library, match: Match, *, today: Any, language: Language = "en") -> Reply:
    """The best fact (and up to two that add to it) with sources, dates, caveats and the full card, in
    ``language`` where the facts have it (a fact without a Chinese text is shown in English)."""
    topic = match.docs[0].topic
    sources = SourceList(library, topic, lang=language, today=today)  # old facts show their date
    facts = [d.fact for d in match.docs]
    lines = [_cite(sources, d.fact, d.topic, language) for d in match.docs]
    command = topic_command(topic)
    first = match.docs[0]
    ref = fact_ref(first.topic, first.section, first.fact)  # what a 👎 is about, for the editors' report
    labels = [_label(d, language) for d in match.docs]
    title = _title(topic, language)
    for n, d in enumerate(match.docs):
        if d.topic.id != topic.id:  # another topic's fact is introduced by that topic's name, not under ours
            labels[n] = f"{_title(d.topic, language)} · {labels[n]}"
            lines[n] = f"{labels[n]}: {lines[n]}"
    reply = Reply(
        kind="answer",
        title=f"{title} · {labels[0]}",
        text="",
        summary=lines[0],
        topic=topic.id,
        # The lead fact is the summary (its label is in the title); the fields are the facts that add to
        # it, so that no card shows the first fact twice (once more under "In short").
        fields=[ReplyField(label=label, value=line, unverified=not d.fact.verified)
                for d, label, line in zip(match.docs[1:], labels[1:], lines[1:], strict=True)],
        sources=sources.refs,
        caveats=caveats_for(facts, regulatory=any(d.topic.kind == "filing" for d in match.docs), today=today,
                            lang=language),
        related=[command],
        actions=[
            Action(kind="command", label=t("full_card_button", language), value=command),
            Action(kind="feedback_up", label=t("helpful", language), value=ref),
            Action(kind="feedback_down", label=t("not_right", language), value=ref),
        ],
        confidence=match.confidence,
        ephemeral=False,
        language=language,
    )
    dates = sorted({f.as_of for f in facts})
    text = library.render("answer", lang=language, reply=reply, lines=lines, as_of=dates, command=command)
    return reply.model_copy(update={"text": text})


def _title(topic: Topic, language: Language) -> str:
    return (topic.title_zh or topic.title) if language == "zh" else topic.title


def _label(doc: Any, language: Language) -> str:
    if language == "zh":
        return SECTION_LABELS_ZH[doc.topic.kind].get(doc.section, doc.label)
    return doc.label


def _cite(sources: SourceList, fact: Any, topic: Topic, language: Language) -> str:
    """A fact as a reader sees it (in the list's language), marked when the pack disputes or supersedes it."""
    line = sources.cite(fact, topic)
    if fact.status == "current":
        return line
    head, _, number = line.rpartition(" [")
    return f"{head}{t('status.' + fact.status, language)} [{number}"


def _follow_up(index: QAIndex, question: str, context: Context | None, *, addressed: bool = True) -> Match:
    """The best match for a question, using the conversation's context when the question leans on it.

    A question that names a topic is matched as it stands (another topic wins over the context); if it
    states no intent, the section the conversation was about stands in for one ("and kuaishou?"). A
    question that names no topic is matched as if it named the context's topic ("who do we file it
    with?", "who issues the licences?" after export controls) and is never answered from another topic.
    ``addressed``: the message is to the bot (a mention, a DM, the CLI), not a watched thread's chatter, where
    a question of a kind ("who's going to the meeting?") is more often between people.
    """
    match = index.match(question)
    if context is None or context.topic not in index.topic_ids:
        return match
    sections = (context.section,) if context.section else ()
    if match.query.named:
        if match.query.intents or not sections:
            return match
        # "and weibo?": nothing but another topic's name asks the same thing about it.
        names = frozenset().union(*(index.name_tokens[ti] for ti in match.query.named))
        bare = all(c.primary in names or c.idf <= COMMON_WORD_IDF for c in match.query.concepts)
        same = index.match(question, sections=sections, only_sections=bare)
        return same if same.docs else index.match(question, sections=sections)
    ti = index.topic_ids[context.topic]
    followed = index.match(question, assume=(ti,))
    # Only the question's form: its words are intent cues, or words nearly every topic uses ("file").
    form_only = all(c.intents or c.idf <= COMMON_WORD_IDF for c in followed.query.concepts)
    if followed.query.intents and form_only:  # "who does it go to?", "what documents?": only the kind of answer
        # The topic's best fact for the question, when it is of a kind asked ("how long do we keep the report":
        # the retention fact, not the first "who must" one); else the topic's first fact of the first kind.
        lead = followed.ids[0] if followed.ids else None
        if (lead is not None and index.docs[lead].topic.id == context.topic and followed.confidence >= ANSWER_BAR
                and any(index.intent_docs[i.name][lead] for i in followed.query.intents)):
            return followed
        return index.intent_match(followed.query, ti) or match
    if followed.docs and followed.docs[0].topic.id != context.topic:
        # A question that names no topic stays with the conversation's: another topic's words ("can we sell
        # there without a china entity" after Kuaishou is how Douyin's facts put it too) never take the
        # thread elsewhere. Its best fact here is not what was asked either (the other topic's fitted
        # better), so: "I cover <the thread's topic>, but not this point", with its card.
        within = index.match(question, assume=(ti,), only_assumed=True)
        if addressed and _of_kind_asked(index, within):
            # Unless it asks a kind of thing ("who has to file, us or the vendor?") and the topic's best fact
            # for it is of that kind: that is the thread's answer, as sure as a question of form alone.
            return dataclasses.replace(within, confidence=max(within.confidence, INTENT_ONLY_CONFIDENCE))
        return dataclasses.replace(within, confidence=min(within.confidence, ELSEWHERE_IN_THREAD))
    same_topic = bool(match.docs) and match.docs[0].topic.id == context.topic
    best = match if same_topic and match.confidence > followed.confidence else followed
    if (addressed and best.confidence < ANSWER_BAR and best.docs and best.docs[0].topic.id == context.topic
            and _of_kind_asked(index, best)):
        # "do we file it with the CAC or someone else?": the thread topic's fact of the kind asked (its
        # authority) answers it, though it names another body.
        return dataclasses.replace(best, confidence=INTENT_ONLY_CONFIDENCE)
    return best


def _of_kind_asked(index: QAIndex, match: Match) -> bool:
    """The match's leading fact is of a kind the question's form asks for (who, how long, documents...),
    and the question's other words are mostly the topic's own ("the recall plan", "the CAC"), not a meeting
    or a lunch."""
    lead = match.ids[0] if match.ids else None
    asked = [i.name for i in match.query.intents if i.name in FORM_INTENTS]
    return (lead is not None and any(index.intent_docs[name][lead] for name in asked)
            and match.features.get("topic_coverage", 0.0) >= KIND_ASKED_COVERAGE)


async def _deadline(desk: Desk, request: Request, question: str, match: Match, context: Context | None,
                    explicit: frozenset[int] | set[int]) -> Reply | None:
    """The computed deadline when the question asks one in plain words (see :mod:`handlers.qa.deadlines`).
    ``explicit``: the topics the question itself names (not what the context assumed)."""
    if not looks_dated(question):  # the cheap test first: most questions hold no date
        return None
    index = qa_index(desk)
    named = [index.topics[ti] for ti in sorted(explicit) if index.topics[ti].deadline is not None]
    if match.docs:  # several filings named ("备案" is also the ICP filing's alias): the one answered first leads
        named.sort(key=lambda t: t.id != match.docs[0].topic.id)
    context_filing = None
    if context is not None and not explicit:
        context_filing = desk.library.topics.get(context.filing or context.topic or "")
    elif not explicit:
        # Names no filing, but is plainly about one's deadline rule ("refund deadline for returned goods
        # we got back on 25 nov?"): the dates are the asker's own data, so they are left out to find which.
        # The rule's own fact must be part of the answer: a filing has other deadlines than its rule.
        dateless = DATE_SPAN.sub(" ", question)
        # First as any question; then among deadline facts only, since the words that say which deadline
        # ("refund a returned order") can fit the topic's other facts better ("returns within seven days").
        for about in (index.match(dateless), index.match(dateless, sections=("deadline",), only_sections=True)):
            rule = about.topic.deadline if about.topic is not None else None
            if (rule is not None and about.confidence >= DEADLINE_TOPIC_BAR
                    and any(d.fact is rule.fact for d in about.docs)):
                named = [about.docs[0].topic]
                break
    ask = deadline_question(
        question, named=named, context_filing=context_filing,
        # After a computed deadline, or an answer about the filing's deadline rule ("how long after grading
        # do we have to file?"), "and if we graded it on 1 March?" asks for the date.
        # (The latter only in a message to the bot: in a watched thread a date is more often people's plans.)
        follows_deadline=(context is not None and not explicit and (
            context.filing is not None or (context.section == "deadline" and request.mode != "watch"))),
        cues=index.lexicon.deadline_cues, local_now=request.local_now(),
    )
    if ask is None:
        return None
    reply = deadline_reply(desk.library, ask.topic, ask.start, today=request.today(), cal=desk.calendar,
                           tz=request.timezone)
    return reply.model_copy(update={"ephemeral": False, "confidence": 1.0})


@router.fallback
async def answer(request: Request, desk: Desk) -> Reply:
    """Free text from a mention, DM, the CLI, a watched channel or a thread the bot is part of."""
    index = qa_index(desk)
    watch = request.mode == "watch"
    # "next year", 后年: the year they mean, so that a fact about another year does not answer.
    question = absolute_years(strip_chatter(request.text), request.today().year)
    language = request.answer_language(question)
    context = await load_context(desk.store, request)
    if watch and not looks_like_question(index, question):
        return no_answer(desk, request, language=language)
    match = _follow_up(index, question, context, addressed=not watch)
    # What the question itself names (the match may have assumed the thread's topic): needed in a thread, or
    # for a deadline in plain words.
    explicit = index.analyse(question).named if context is not None or looks_dated(question) else set()
    reply = await _deadline(desk, request, question, match, context, explicit)
    if reply is None:
        followed = context is not None and bool(match.query.named) and not explicit
        bar = WATCH_BAR if watch else ANSWER_BAR
        if watch and not (followed or mentions_domain(index, match.query)):
            return no_answer(desk, request, match.confidence, language=language)
        if not watch and (not match.docs or match.confidence < bar):  # not ambient messages: lexical only
            match = await _meaning(desk, question, match)
        if not match.docs or match.confidence < bar:
            leaned = context.topic if context is not None and not explicit else None
            reply = no_answer(desk, request, match.confidence, match=match, language=language, thread_topic=leaned)
            closest = match.docs[0].topic.id if match.docs else None
            await record_unanswered(desk.store, request, reply, closest, policy_of(desk.settings))
            await save_context(desk.store, request, next_context(request, reply, context, None))
            return reply
        reply = answer_reply(desk.library, match, today=request.today(), language=language)
    section = match.docs[0].section if match.docs and reply.kind == "answer" else None
    await save_context(desk.store, request, next_context(request, reply, context, section))
    return reply


# ------------------------------------------------------------------------------------ watch command


@router.subcommand(
    "/china-filing", "watch", usage="/china-filing watch on|off",
    summary="answer questions about these topics in this channel (in a thread)", changes_state=True,
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


