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
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError
from rapidfuzz import fuzz, process

from content.schema import RECOMMENDED_SECTIONS, SECTION_LABELS, Fact, PackMeta, Source, Topic, TopicKind

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


@dataclass
class Library:
    """Every topic of every pack, with their sources, names and templates."""

    packs: dict[str, PackMeta]
    topics: dict[str, Topic]
    topic_pack: dict[str, str]  # topic id -> pack name
    root: Path = PACKS_DIR
    templates_dir: Path = TEMPLATES_DIR
    _names: dict[str, str] = field(default_factory=dict)  # normalised name -> topic id

    def __post_init__(self) -> None:
        for topic in self.topics.values():
            for name in self.names_of(topic):
                self._names.setdefault(normalise_name(name), topic.id)

    # ----------------------------------------------------------------------------------- lookups

    @staticmethod
    def names_of(topic: Topic) -> list[str]:
        names = [topic.id, topic.title, *topic.aliases]
        if topic.title_zh:
            names.append(topic.title_zh)
        return names

    def of_kind(self, kind: TopicKind) -> list[Topic]:
        return [t for t in self.topics.values() if t.kind == kind]

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
        choices = {
            name: tid for name, tid in self._names.items() if kind is None or self.topics[tid].kind == kind
        }
        found = process.extract(query, list(choices), scorer=fuzz.WRatio, limit=limit * 4, score_cutoff=60)
        out: list[Topic] = []
        for name, _score, _ in found:
            topic = self.topics[choices[name]]
            if topic not in out:
                out.append(topic)
        return out[:limit]

    # ----------------------------------------------------------------------------------- templates

    @cached_property
    def templates(self) -> SandboxedEnvironment:
        # Sandboxed and strict: templates are content, edited by non-programmers. User text only ever
        # arrives as a variable, so it is never parsed as template syntax.
        env = SandboxedEnvironment(
            loader=FileSystemLoader(str(self.templates_dir)),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
            auto_reload=False,  # loaded once per process, like the packs: no stat() of the file per render
        )
        env.filters["day"] = format_day
        return env

    def render(self, template: str, **context: Any) -> str:
        text = self.templates.get_template(f"{template}.j2").render(**context)
        # Templates are laid out for editors; collapse the blank lines their layout leaves behind.
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def format_day(value: dt.date | dt.datetime) -> str:
    """``Tue 4 Nov 2025`` (or with the time for datetimes): unambiguous for UK and Chinese readers."""
    if isinstance(value, dt.datetime):
        return value.strftime("%a %-d %b %Y %H:%M %Z").strip()
    return value.strftime("%a %-d %b %Y")


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


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

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
) -> CheckReport:
    """Everything ``chinadesk content check`` reports: load errors, template errors, stale facts."""
    # Imported here: rendering every card goes through the real handlers, so the check sees exactly
    # what users would (and handlers import this module).
    from handlers.cards import render_samples

    report = CheckReport()
    today = today or dt.date.today()
    try:
        library = load_library(root, templates_dir)
    except ContentError as exc:
        report.errors.extend(exc.problems)
        return report

    kinds = [t.kind for t in library.topics.values()]
    report.counts = {f"{kind} topics": kinds.count(kind) for kind in sorted(set(kinds))}
    for topic in library.topics.values():
        pack = library.topic_pack[topic.id]
        missing = [s for s in RECOMMENDED_SECTIONS[topic.kind] if s not in topic.sections]
        if topic.kind == "filing" and topic.deadline is None:
            missing.append("deadline rule")
        if missing:
            report.warnings.append(f"{pack}/{topic.id}: no {', '.join(missing)} (sources did not support it?)")
        if len(topic.aliases) < 2:
            report.warnings.append(f"{pack}/{topic.id}: fewer than two aliases")
        for section, fact in topic.all_facts():
            label = SECTION_LABELS[topic.kind].get(section, section)
            if (today - fact.as_of).days > stale_days:
                report.warnings.append(
                    f"{pack}/{topic.id}: {label}: stale, as of {fact.as_of} (> {stale_days} days): {fact.text[:70]}"
                )
            if fact.as_of > today:
                report.errors.append(f"{pack}/{topic.id}: {label}: as_of {fact.as_of} is in the future")
            if any(mark in fact.text for mark in ("{{", "{%", "<", ">")):
                report.errors.append(f"{pack}/{topic.id}: {label}: fact text holds markup or template syntax")
            source = library.source(topic, fact)
            if source.published > today:
                report.errors.append(f"{pack}/{topic.id}: source {fact.source!r} is published in the future")
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
                report.warnings.append(f"{where}: source {sid!r} is not served over https: {src.url}")
    report.errors.extend(render_samples(library, today=today))
    return report
