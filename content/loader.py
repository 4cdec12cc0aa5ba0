"""Load the content packs once, index their names, render their templates, and check them.

``load_library()`` is called once at start-up; everything after that is in-memory lookups. The same
code backs ``chinadesk content check``, so what an editor sees there is exactly what the bot loads.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError
from rapidfuzz import fuzz, process

from content import i18n
from content.i18n import format_day  # noqa: F401  (re-exported: callers have long imported it from here)
from content.schema import (
    RECOMMENDED_SECTIONS,
    Fact,
    Language,
    PackMeta,
    Source,
    Topic,
    TopicKind,
    section_label,
)

CONTENT_DIR = Path(__file__).resolve().parent
PACKS_DIR = CONTENT_DIR / "packs"
TEMPLATES_DIR = CONTENT_DIR / "templates"


class ContentError(Exception):
    """The packs cannot be loaded; ``problems`` lists every reason found, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("content packs are invalid:\n  " + "\n  ".join(problems))
        self.problems = problems


_PUNCT = re.compile(r"[\s\-_/.,'’\"!?()&:;]+")


def normalise_name(text: str) -> str:
    """The form names are compared in: NFKC, case-folded, punctuation folded to single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _PUNCT.sub(" ", text).strip()


_CJK = re.compile(r"[\u3000-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[a-z0-9]", re.IGNORECASE)
# "Did you mean": a name this close by plain edit ratio is taken as the one mistyped (fast path), and the
# others that close to the query are offered beside it.
CLOSE_TYPO_SCORE = 85
TYPO_SCORE = 75


@dataclass
class Library:
    """Every topic of every pack, with their sources, names and templates."""

    packs: dict[str, PackMeta]
    topics: dict[str, Topic]
    topic_pack: dict[str, str]  # topic id -> pack name
    root: Path = PACKS_DIR
    templates_dir: Path = TEMPLATES_DIR
    _names: dict[str, str] = field(default_factory=dict)  # normalised name -> topic id
    # topic id -> ids of the topics linked to it either way: its own `related` first, then every topic
    # that lists it. Derived once here so that a card never scans the library to find its back-links.
    links: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # kind -> (names, their topic ids) for "did you mean": built at first use, once per kind.
    _suggestions: dict[tuple[str | None, bool], tuple[list[str], list[str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for topic in self.topics.values():
            for name in self.names_of(topic):
                self._names.setdefault(normalise_name(name), topic.id)
        links: dict[str, dict[str, None]] = {
            tid: dict.fromkeys(r for r in t.related if r in self.topics and r != tid) for tid, t in self.topics.items()
        }
        for topic in self.topics.values():
            for other in topic.related:
                if other in links and other != topic.id:
                    links[other].setdefault(topic.id)
        self.links = {tid: tuple(ids) for tid, ids in links.items()}

    # ----------------------------------------------------------------------------------- lookups

    @staticmethod
    def names_of(topic: Topic) -> list[str]:
        names = [topic.id, topic.title, *topic.aliases]
        if topic.title_zh:
            names.append(topic.title_zh)
        return names

    def of_kind(self, kind: TopicKind) -> list[Topic]:
        return [t for t in self.topics.values() if t.kind == kind]

    def linked(self, topic: Topic, *kinds: TopicKind) -> list[Topic]:
        """Topics of ``kinds`` linked to ``topic`` either way (a sector's filings, a filing's sectors)."""
        found = (self.topics[tid] for tid in self.links.get(topic.id, ()))
        return [t for t in found if t.kind in kinds]

    def source(self, topic: Topic, fact: Fact) -> Source:
        return self.source_by_id(topic, fact.source)

    def source_by_id(self, topic: Topic, source_id: str) -> Source:
        """A source a topic cites: its own (in the topic file) first, then its pack's."""
        return topic.sources.get(source_id) or self.packs[self.topic_pack[topic.id]].sources[source_id]

    def find(self, text: str, kind: TopicKind | None = None) -> Topic | None:
        """Exact match on id, title, alias or Chinese name (after normalising), or None."""
        topic_id = self._names.get(normalise_name(text))
        if topic_id is None:
            return None
        topic = self.topics[topic_id]
        return topic if kind is None or topic.kind == kind else None

    def suggest(self, text: str, kind: TopicKind | None = None, limit: int = 3) -> list[Topic]:
        """Closest topics by fuzzy name match, best first ("did you mean ...")."""
        query = normalise_name(text)
        if not query:
            return []
        names, ids = self._suggestion_choices(kind, latin_only=_CJK.search(query) is None)
        # A mistyped name (a letter or two wrong) is the usual case, and the plain edit ratio finds it at
        # ~0.1 µs a name. WRatio, which also finds a name from part of it ("electric" -> electric-vehicles),
        # costs ~2 µs a name (a millisecond over every name): only when the plain ratio finds nothing close.
        found = process.extract(query, names, scorer=fuzz.QRatio, limit=limit * 4, score_cutoff=TYPO_SCORE)
        if not found or found[0][1] < CLOSE_TYPO_SCORE:
            found = process.extract(query, names, scorer=fuzz.WRatio, limit=limit * 4, score_cutoff=60)
        out: list[Topic] = []
        for _name, _score, index in found:
            topic = self.topics[ids[index]]
            if topic not in out:
                out.append(topic)
        return out[:limit]

    def _suggestion_choices(self, kind: TopicKind | None, *, latin_only: bool) -> tuple[list[str], list[str]]:
        """The names ``suggest`` matches against for ``kind`` and their topic ids, built once per kind: every
        typo asks, and the library does not change after loading. ``latin_only`` (a query without Chinese):
        leave out names with no Latin letter or digit, which share nothing with it and can never reach the
        cut-off; the fuzzy scorer is the cost of a "did you mean", about 7 µs a name."""
        key = (kind, latin_only)
        found = self._suggestions.get(key)
        if found is None:
            pairs = [(name, tid) for name, tid in self._names.items()
                     if (kind is None or self.topics[tid].kind == kind)
                     and not (latin_only and not _LATIN.search(name))]
            found = self._suggestions[key] = ([name for name, _ in pairs], [tid for _, tid in pairs])
        return found

    # ----------------------------------------------------------------------------------- templates

    @cached_property
    def templates(self) -> Environment:
        # Strict, and plain (not sandboxed) for the project's own templates: those are files in this
        # repository, reviewed in git like the code, and user text only ever arrives as a variable, so it
        # is never parsed as template syntax. The sandbox checked every attribute access and call of every
        # render (about a third of a deadline reply's time) and protected against nothing that could reach
        # it. Templates from anywhere else (``content check --templates-dir``, an editor's draft folder)
        # are still rendered sandboxed.
        trusted = self.templates_dir.resolve() == TEMPLATES_DIR
        env = (Environment if trusted else SandboxedEnvironment)(
            loader=FileSystemLoader(str(self.templates_dir)),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,  # the renderers escape for their surface (Slack mrkdwn, Adaptive Cards, text)
            auto_reload=False,  # loaded once per process, like the packs: no stat() of the file per render
        )
        # `t("sources")` and `x | day` read the language the template is rendered in (`lang`), so that
        # every fixed string of a template has its Chinese version in content/strings.yaml.
        env.globals["t"] = _template_t
        env.filters["day"] = _template_day
        return env

    @cached_property
    def _compiled(self) -> dict[str, Template]:
        """Every template compiled once, at first use (``compile_templates()`` at start-up for the server)."""
        return {name[:-3]: self.templates.get_template(name)
                for name in self.templates.list_templates(extensions=["j2"])}

    def compile_templates(self) -> None:
        """Compile every template now (the server calls it at start-up, so no request pays for it)."""
        self._compiled  # noqa: B018

    def render(self, template: str, *, lang: Language = "en", **context: Any) -> str:
        compiled = self._compiled.get(template)
        if compiled is None:  # not a file of the folder: let Jinja2 raise its own TemplateNotFound
            compiled = self.templates.get_template(f"{template}.j2")
        text = compiled.render(lang=lang, **context)
        # Templates are laid out for editors; collapse the blank lines their layout leaves behind.
        return _BLANK_LINES.sub("\n\n", text).strip()


_BLANK_LINES = re.compile(r"\n{3,}")


@pass_context
def _template_t(context: Context, key: str, **params: Any) -> str:
    return i18n.t(key, context.get("lang", "en"), **params)


@pass_context
def _template_day(context: Context, value: dt.date | dt.datetime) -> str:
    return i18n.format_day(value, context.get("lang", "en"))


# --------------------------------------------------------------------------------------------- loading


# libyaml's loaders when PyYAML was built with it (its wheels are): the same documents and objects,
# ~8x faster to read, which is a quarter of start-up otherwise.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BASE_LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


def parse_yaml(text: str, *, strings_only: bool = False) -> Any:
    """YAML text -> data, safely (no arbitrary objects). ``strings_only``: every scalar stays the string
    it is written as (``on``, ``no``, ``618``), for word lists."""
    return yaml.load(text, Loader=_BASE_LOADER if strings_only else _SAFE_LOADER)


def _read_yaml(path: Path, problems: list[str]) -> Any:
    """The file's YAML, or None (with the reason in ``problems``) when it cannot be read or is empty."""
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"{path}: cannot read YAML: {' '.join(str(exc).split())}")
        return None
    if data is None:
        problems.append(f"{path}: the file is empty")
    return data


def _validation_lines(path: Path, exc: ValidationError) -> Iterable[str]:
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        yield f"{path}: {where}: {err['msg']}"


def load_library(root: Path | str | None = None, templates_dir: Path | str | None = None) -> Library:
    """Load and validate every pack under ``root``; raise :class:`ContentError` listing all problems."""
    root = Path(root) if root else PACKS_DIR
    problems: list[str] = []
    packs: dict[str, PackMeta] = {}
    topics: dict[str, Topic] = {}
    topic_pack: dict[str, str] = {}
    seen_names: dict[str, str] = {}

    pack_dirs = sorted(p for p in root.iterdir() if p.is_dir() and (p / "pack.yaml").exists()) if root.is_dir() else []
    if not pack_dirs:
        raise ContentError([f"{root}: no content packs found (a pack is a folder with pack.yaml)"])

    for pack_dir in pack_dirs:
        raw_meta = _read_yaml(pack_dir / "pack.yaml", problems)
        if raw_meta is None:
            continue
        try:
            meta = PackMeta.model_validate(raw_meta)
        except ValidationError as exc:
            problems.extend(_validation_lines(pack_dir / "pack.yaml", exc))
            continue
        packs[meta.name] = meta
        for path in sorted(pack_dir.glob("*.yaml")):
            if path.name == "pack.yaml":
                continue
            raw = _read_yaml(path, problems)
            if raw is None:
                continue
            try:
                topic = Topic.model_validate(raw)
            except ValidationError as exc:
                problems.extend(_validation_lines(path, exc))
                continue
            if topic.id != path.stem:
                problems.append(f"{path}: topic id {topic.id!r} does not match the file name")
            if topic.kind != meta.kind:
                problems.append(f"{path}: a {topic.kind} topic in the {meta.kind} pack {meta.name!r}")
            if topic.id in topics:
                problems.append(f"{path}: topic id {topic.id!r} is already used by pack {topic_pack[topic.id]!r}")
                continue
            for clash in sorted(set(topic.sources) & set(meta.sources)):
                problems.append(f"{path}: source id {clash!r} is also defined in {pack_dir.name}/pack.yaml")
            cited = [(section, fact.source) for section, fact in topic.all_facts()]
            cited += [("next_steps", step.source) for step in topic.next_steps if step.source]
            for section, source_id in cited:
                if source_id not in meta.sources and source_id not in topic.sources:
                    problems.append(
                        f"{path}: {section}: cites unknown source {source_id!r} "
                        f"(not in the topic's sources or {pack_dir.name}/pack.yaml)"
                    )
            for name in Library.names_of(topic):
                key = normalise_name(name)
                owner = seen_names.get(key)
                if owner is not None and owner != topic.id:
                    problems.append(f"{path}: name or alias {name!r} is already used by topic {owner!r}")
                seen_names[key] = topic.id
            topics[topic.id] = topic
            topic_pack[topic.id] = meta.name

    for topic in topics.values():
        for other in topic.related:
            if other not in topics:
                problems.append(f"{topic.id}: related topic {other!r} does not exist")
    event_ids: dict[str, str] = {}
    for topic in topics.values():
        for event in topic.events:
            if event.id in event_ids:
                problems.append(f"{topic.id}: event id {event.id!r} is already used by {event_ids[event.id]!r}")
            event_ids[event.id] = topic.id

    if problems:
        raise ContentError(problems)
    return Library(packs=packs, topics=topics, topic_pack=topic_pack, root=root,
                   templates_dir=Path(templates_dir) if templates_dir else TEMPLATES_DIR)


# ------------------------------------------------------------------------------------------- checking

# Rules whose breach is an error: a source a lawyer would not accept, a calendar that only looks back.
ERROR_RULES = frozenset({"http-source", "no-publisher", "no-future-event", "unknown-related", "strings"})
# Rules of completeness (bilingual, linked, actionable): warnings, errors under `content check --strict`.
QUALITY_RULES = frozenset({
    "no-text-zh", "few-next-steps", "unlinked-topic", "unlinked-filing", "platform-no-entry", "duplicate-question",
    "too-unverified",
})
MIN_NEXT_STEPS = 3
# Readers are told which facts are unverified; past this share the packs read as rumour, not advice.
MAX_UNVERIFIED_SHARE = 0.15
PLATFORM_ENTRY_SECTIONS = ("foreign_brands", "commerce")
FUTURE_EVENT_HORIZON_DAYS = 3650  # "in the future": within ten years of the check


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    strict: bool = False
    library: Library | None = None  # what was checked, for checks above content (rendering every card)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, rule: str, message: str) -> None:
        """Report a breach of ``rule``: an error or a warning depending on the rule and ``strict``."""
        line = f"[{rule}] {message}"
        if rule in ERROR_RULES or (rule in QUALITY_RULES and self.strict):
            self.errors.append(line)
        else:
            self.warnings.append(line)

    def render(self) -> str:
        lines = []
        if self.counts:
            lines.append("Content packs: " + ", ".join(f"{n} {k}" for k, n in self.counts.items()))
        for e in self.errors:
            lines.append(f"ERROR   {e}")
        for w in self.warnings:
            lines.append(f"warning {w}")
        lines.append(
            f"{'FAILED' if self.errors else 'OK'}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        )
        return "\n".join(lines)


def check_library(
    root: Path | str | None = None,
    *,
    stale_days: int = 365,
    today: dt.date | None = None,
    templates_dir: Path | str | None = None,
    strict: bool = False,
) -> CheckReport:
    """Everything ``chinadesk content check`` reports about the packs themselves: load errors, sources,
    dates, links, Chinese text, checklists, stale facts. Rendering every card is a check of the handlers
    on top of this one (``bot/cli.py`` composes them): content imports nothing above itself."""
    report = CheckReport(strict=strict)
    today = today or dt.date.today()
    try:
        library = load_library(root, templates_dir)
    except ContentError as exc:
        report.errors.extend(exc.problems)
        return report
    report.library = library

    kinds = [t.kind for t in library.topics.values()]
    report.counts = {f"{kind} topics": kinds.count(kind) for kind in sorted(set(kinds))}
    for topic in library.topics.values():
        _check_topic(report, library, topic, stale_days=stale_days, today=today)
    _check_sources(report, library)
    _check_questions(report, library)
    _check_strings(report)
    facts = [fact for topic in library.topics.values() for _, fact in topic.all_facts()]
    unverified = sum(not fact.verified for fact in facts)
    if facts and unverified / len(facts) > MAX_UNVERIFIED_SHARE:
        share = unverified / len(facts)
        report.add("too-unverified", f"{unverified} of {len(facts)} facts ({share:.1%}) are unverified; at most "
                   f"{MAX_UNVERIFIED_SHARE:.0%}: verify or drop some")
    return report


def _check_topic(report: CheckReport, library: Library, topic: Topic, *, stale_days: int, today: dt.date) -> None:
    where = f"{library.topic_pack[topic.id]}/{topic.id}"
    missing = [s for s in RECOMMENDED_SECTIONS[topic.kind] if s not in topic.sections
               and not (topic.kind == "platform" and s in PLATFORM_ENTRY_SECTIONS)  # "platform-no-entry" says it
               and not (s == "dates" and topic.events)]  # a calendar card lists its events under "Dates"
    if topic.kind == "filing" and topic.deadline is None:
        missing.append("deadline rule")
    if missing:
        report.warnings.append(f"{where}: no {', '.join(missing)} (sources did not support it?)")
    if len(topic.aliases) < 2:
        report.warnings.append(f"{where}: fewer than two aliases")
    facts = topic.all_facts()
    for section, fact in facts:
        label = section_label(topic.kind, section)
        if (today - fact.as_of).days > stale_days:
            report.warnings.append(
                f"{where}: {label}: stale, as of {fact.as_of} (> {stale_days} days): {fact.text[:70]}"
            )
        if fact.as_of > today:
            report.errors.append(f"{where}: {label}: as_of {fact.as_of} is in the future")
        if any(mark in text for text in (fact.text, fact.text_zh or "") for mark in ("{{", "{%", "<", ">")):
            report.errors.append(f"{where}: {label}: fact text holds markup or template syntax")
        source = library.source(topic, fact)
        if source.published > today:
            report.errors.append(f"{where}: source {fact.source!r} is published in the future")
    no_zh = [section for section, fact in facts if not fact.text_zh]
    if no_zh:
        report.add("no-text-zh", f"{where}: {len(no_zh)} of {len(facts)} facts have no text_zh (Chinese text), "
                                 f"e.g. in {section_label(topic.kind, no_zh[0])}")
    if topic.kind == "filing" and len(topic.next_steps) < MIN_NEXT_STEPS:
        report.add("few-next-steps", f"{where}: {len(topic.next_steps)} next_steps; a filing card ends with a "
                                     f"checklist of at least {MIN_NEXT_STEPS} (prepare, file, expect, keep)")
    if topic.kind in ("sector", "platform") and not library.linked(topic, "filing"):
        report.add("unlinked-topic", f"{where}: no filing is linked to it either way (add the filings that apply "
                                     f"to `related`)")
    if topic.kind == "filing" and not library.linked(topic, "sector", "platform"):
        report.add("unlinked-filing", f"{where}: no sector or platform is linked to it either way")
    if topic.kind == "platform":
        absent = [s for s in PLATFORM_ENTRY_SECTIONS if not topic.sections.get(s)]
        if absent:
            report.add("platform-no-entry", f"{where}: no {' or '.join(absent)} section: a platform card says how a "
                                            f"foreign brand gets on and sells")
    if topic.kind == "calendar" and not any(
        e.occurrences(today + dt.timedelta(days=1), today + dt.timedelta(days=FUTURE_EVENT_HORIZON_DAYS))
        for e in topic.events
    ):
        report.add("no-future-event", f"{where}: no event after {today}: add the next dates (an estimate, "
                                      f"labelled so, until the official notice is out)")


def _check_sources(report: CheckReport, library: Library) -> None:
    for pack_name, meta in library.packs.items():
        pack_topics = [t for t in library.topics.values() if library.topic_pack[t.id] == pack_name]
        used = {fact.source for t in pack_topics for _, fact in t.all_facts()}
        used |= {step.source for t in pack_topics for step in t.next_steps if step.source}
        defined = [(pack_name, sid, src) for sid, src in meta.sources.items()]
        defined += [(f"{pack_name}/{t.id}", sid, src) for t in pack_topics for sid, src in t.sources.items()]
        for where, sid, src in defined:
            if sid not in used:
                report.warnings.append(f"{where}: source {sid!r} is cited by no fact")
            if src.url.scheme != "https":
                report.add("http-source", f"{where}: source {sid!r} is not served over https: {src.url}")
            if not (src.publisher or "").strip():
                report.add("no-publisher", f"{where}: source {sid!r} names no publisher")


def _check_questions(report: CheckReport, library: Library) -> None:
    """The same alternate question on two facts (or twice on one) makes retrieval pick at random."""
    seen: dict[str, str] = {}
    for topic in library.topics.values():
        for section, fact in topic.all_facts():
            where = f"{library.topic_pack[topic.id]}/{topic.id}/{section}"
            for question in fact.questions:
                key = normalise_name(question)
                if key in seen:
                    report.add("duplicate-question", f"{where}: question {question!r} is also listed at {seen[key]}")
                else:
                    seen[key] = where


def _check_strings(report: CheckReport) -> None:
    for key, entry in i18n.strings().items():
        if not entry.get("zh"):
            report.add("strings", f"strings.yaml: {key!r} has no zh text")
        elif i18n.placeholders(entry["en"]) != i18n.placeholders(entry["zh"]):
            report.add("strings", f"strings.yaml: {key!r}: en and zh use different {{placeholders}}")


# ---------------------------------------------------------------------------------------------- stats

STATS_FIELDS = (
    "filings", "sectors", "platforms", "calendar", "facts", "unverified", "zh_facts", "sources", "sources_http",
    "as_of_within_365_days", "future_events",
)


def content_stats(library: Library, *, today: dt.date) -> dict[str, int]:
    """The figures of ``chinadesk content stats`` (README, "Content stats", defines each)."""
    facts = [fact for topic in library.topics.values() for _, fact in topic.all_facts()]
    sources = [src for meta in library.packs.values() for src in meta.sources.values()]
    sources += [src for topic in library.topics.values() for src in topic.sources.values()]
    horizon = today + dt.timedelta(days=365)
    kinds = [t.kind for t in library.topics.values()]
    return {
        "filings": kinds.count("filing"),
        "sectors": kinds.count("sector"),
        "platforms": kinds.count("platform"),
        "calendar": kinds.count("calendar"),
        "facts": len(facts),
        "unverified": sum(not f.verified for f in facts),
        "zh_facts": sum(bool(f.text_zh) for f in facts),
        "sources": len(sources),
        "sources_http": sum(src.url.scheme == "http" for src in sources),
        "as_of_within_365_days": sum(0 <= (today - f.as_of).days <= 365 for f in facts),
        "future_events": sum(
            len(e.occurrences(today + dt.timedelta(days=1), horizon)) for t in library.topics.values() for e in t.events
        ),
    }
