"""Typed shape of the content packs, validated with pydantic once at load.

A pack is a folder under ``content/packs/`` holding ``pack.yaml`` (its name, kind and the sources its
facts cite) and one YAML file per topic. Every statement the bot can make is a :class:`Fact` that
names a source by id and says when it was known to hold (``as_of``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

TopicKind = Literal["filing", "sector", "platform", "calendar"]
DeadlineUnit = Literal["working_days", "calendar_days", "hours"]
# "current": the pack stands behind it. "disputed": sources disagree (shown with a caveat, never the
# lead of an answer). "superseded": kept for history (an old figure, a replaced rule), never the lead.
FactStatus = Literal["current", "disputed", "superseded"]
Language = Literal["en", "zh"]

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

# The sections each kind of topic is expected to have, in the order a card shows them, with the label
# a person reads. `content check` warns when a recommended section is missing.
SECTION_LABELS: dict[str, dict[str, str]] = {
    "filing": {
        "summary": "In short",
        "authority": "Authority",
        "who_must_file": "Who must file",
        "trigger": "Trigger",
        "threshold": "Threshold",
        "deadline": "Deadline",
        "documents": "Documents",
        "review_time": "Review time",
        "follow_on": "After filing",
        "penalties": "Penalties",
        "background": "Background",
    },
    "sector": {
        "summary": "In short",
        "size": "Size",
        "growth": "Growth",
        "key_players": "Key players",
        "policy": "Policy",
        "risks": "Risks",
        "opportunities": "Opportunities for UK firms",
        "what_to_do": "What to do",
        "background": "Background",
    },
    "platform": {
        "summary": "In short",
        "what_it_is": "What it is",
        "audience": "Audience",
        "users": "Users",
        "formats": "Formats",
        "commerce": "Commerce features",
        "foreign_brands": "How a foreign brand gets on",
        "what_to_do": "What to do",
        "background": "Background",
    },
    "calendar": {
        "summary": "In short",
        "dates": "Dates",
        "preparation": "Preparation",
        "background": "Background",
    },
}

# The same labels in Chinese, for answers given in Chinese.
SECTION_LABELS_ZH: dict[str, dict[str, str]] = {
    "filing": {
        "summary": "概要",
        "authority": "主管机关",
        "who_must_file": "义务主体",
        "trigger": "触发条件",
        "threshold": "门槛",
        "deadline": "期限",
        "documents": "所需材料",
        "review_time": "审核时间",
        "follow_on": "提交之后",
        "penalties": "法律责任",
        "background": "背景",
    },
    "sector": {
        "summary": "概要",
        "size": "规模",
        "growth": "增长",
        "key_players": "主要企业",
        "policy": "政策",
        "risks": "风险",
        "opportunities": "英国企业的机会",
        "what_to_do": "建议做法",
        "background": "背景",
    },
    "platform": {
        "summary": "概要",
        "what_it_is": "平台简介",
        "audience": "用户群体",
        "users": "用户规模",
        "formats": "内容形式",
        "commerce": "电商功能",
        "foreign_brands": "外国品牌如何入驻",
        "what_to_do": "建议做法",
        "background": "背景",
    },
    "calendar": {
        "summary": "概要",
        "dates": "日期",
        "preparation": "准备工作",
        "background": "背景",
    },
}



def section_label(kind: TopicKind, section: str, language: Language = "en") -> str:
    """The label a reader sees for a section, in ``language`` (the section's id if it has none)."""
    labels = SECTION_LABELS_ZH if language == "zh" else SECTION_LABELS
    return labels[kind].get(section) or SECTION_LABELS[kind].get(section, section)


RECOMMENDED_SECTIONS: dict[str, tuple[str, ...]] = {
    "filing": ("authority", "who_must_file", "trigger", "documents", "review_time"),
    "sector": ("size", "key_players", "policy", "opportunities"),
    "platform": ("what_it_is", "users", "commerce", "foreign_brands"),
    "calendar": ("dates",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """A published document a fact comes from."""

    title: str = Field(min_length=3)
    url: HttpUrl
    published: dt.date
    # How much of `published` the source itself states: a page that gives only a year is stored as
    # 1 January of that year with precision "year"; an undated page as the day we read it, "accessed".
    published_precision: Literal["day", "month", "year", "accessed"] = "day"
    publisher: str | None = None

    def published_label(self) -> str:
        p = self.published
        return {
            "day": p.isoformat(),
            "month": p.strftime("%Y-%m"),
            "year": str(p.year),
            "accessed": f"undated, read {p.isoformat()}",
        }[self.published_precision]


class Fact(_Strict):
    """One statement, in our own words, with where it comes from and when it was known to hold."""

    text: str = Field(min_length=3)
    source: str  # id of a Source in the pack
    as_of: dt.date
    verified: bool = True
    # The same statement in Chinese, in our own words (regulatory terms as the authority writes them).
    text_zh: str | None = None
    # Extra words people use for this fact (synonyms, Chinese terms); used by retrieval, never shown.
    keywords: list[str] = Field(default_factory=list)
    # Questions this fact answers, as people would ask them (English and Chinese): the "alternate
    # phrasings" of FAQ bots. Used by retrieval, never shown.
    questions: list[str] = Field(default_factory=list)
    status: FactStatus = "current"
    # Editor's note (why unverified, what conflicts); shown to nobody but `content check`.
    note: str | None = None

    def text_in(self, language: Language) -> str:
        """The fact's text in ``language``, falling back to English where no Chinese text exists."""
        return (self.text_zh or self.text) if language == "zh" else self.text


class DeadlineRule(_Strict):
    """"Within N <unit> of <event>": the rule a filing's deadline follows."""

    amount: int = Field(gt=0, le=3650)
    unit: DeadlineUnit
    counted_from: str = Field(min_length=3)  # "the day stored facial data first reaches 100,000 people"
    counted_from_zh: str | None = None  # the same in Chinese ("存储的人脸信息首次达到10万人之日")
    fact: Fact  # the sourced statement of the rule


class FollowOnStep(_Strict):
    """A step after the deadline (review, correction window...), dated from the step before it."""

    name: str
    name_zh: str | None = None
    fact: Fact
    amount: int | None = Field(default=None, gt=0, le=3650)
    unit: DeadlineUnit | None = None
    # What the step is counted from: the filing deadline itself, or the end of the previous step.
    after: Literal["deadline", "previous"] = "previous"

    def name_in(self, language: Language) -> str:
        return (self.name_zh or self.name) if language == "zh" else self.name

    @model_validator(mode="after")
    def _amount_and_unit_together(self) -> FollowOnStep:
        if (self.amount is None) != (self.unit is None):
            raise ValueError("a follow-on step needs both amount and unit, or neither")
        return self


class ChecklistStep(_Strict):
    """One thing to do, in order: "prepare X", "file in system Y", "expect Z", "keep W on record".

    Advice derived from the card's facts; ``source`` (a source id) when one source says it outright.
    """

    text: str = Field(min_length=3)
    text_zh: str | None = None
    source: str | None = None

    def text_in(self, language: Language) -> str:
        return (self.text_zh or self.text) if language == "zh" else self.text


class DatedEvent(_Strict):
    """Something on the calendar a channel can subscribe to (a rule taking effect, a festival...)."""

    id: str
    title: str
    title_zh: str | None = None
    # True when the date is not yet official (e.g. next year's holidays before the State Council's
    # notice): shown labelled as an estimate.
    estimate: bool = False
    date: dt.date | None = None  # a one-off date
    month_day: str | None = None  # "06-18": recurs every year
    lead_days: list[int] = Field(default_factory=lambda: [14, 1])  # calendar days before, to post
    fact: Fact

    @field_validator("id")
    @classmethod
    def _id_is_slug(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"event id {v!r} must be lower-case words joined by hyphens")
        return v

    def title_in(self, language: Language) -> str:
        return (self.title_zh or self.title) if language == "zh" else self.title

    @field_validator("month_day")
    @classmethod
    def _month_day(cls, v: str | None) -> str | None:
        if v is not None:
            dt.date.fromisoformat(f"2024-{v}")  # 2024 is a leap year, so 02-29 is accepted
        return v

    @model_validator(mode="after")
    def _one_kind_of_date(self) -> DatedEvent:
        if (self.date is None) == (self.month_day is None):
            raise ValueError("an event has exactly one of `date` or `month_day`")
        return self

    def occurrences(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Dates of this event within [start, end]."""
        if self.date is not None:
            return [self.date] if start <= self.date <= end else []
        out = []
        for year in range(start.year, end.year + 1):
            try:
                day = dt.date.fromisoformat(f"{year}-{self.month_day}")
            except ValueError:  # 02-29 in a non-leap year
                continue
            if start <= day <= end:
                out.append(day)
        return out


class Topic(_Strict):
    """A filing, sector, platform or calendar briefing."""

    id: str
    kind: TopicKind
    title: str
    title_zh: str | None = None
    aliases: list[str] = Field(default_factory=list)
    summary: Fact
    sections: dict[str, list[Fact]] = Field(default_factory=dict)
    # Filings only.
    deadline: DeadlineRule | None = None
    follow_on: list[FollowOnStep] = Field(default_factory=list)
    next_steps: list[ChecklistStep] = Field(default_factory=list)  # the numbered checklist that ends a card
    # Anything with dates worth a reminder.
    events: list[DatedEvent] = Field(default_factory=list)
    # Ids of other topics. A sector or platform lists the filings that apply to it; a filing lists the
    # sectors and platforms it mostly concerns.
    related: list[str] = Field(default_factory=list)
    # Sources cited only by this topic may live in its own file (ids must not clash with the pack's).
    sources: dict[str, Source] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id_is_slug(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"topic id {v!r} must be lower-case words joined by hyphens")
        return v

    @model_validator(mode="after")
    def _sections_known(self) -> Topic:
        known = SECTION_LABELS[self.kind]
        unknown = [s for s in self.sections if s not in known]
        if unknown:
            raise ValueError(f"unknown section(s) {unknown} for a {self.kind}; known: {sorted(known)}")
        if self.kind != "filing" and (self.deadline or self.follow_on or self.next_steps):
            raise ValueError("only filings carry a deadline rule, follow-on steps or a next-steps checklist")
        return self

    def title_in(self, language: Language) -> str:
        return (self.title_zh or self.title) if language == "zh" else self.title

    def all_facts(self) -> list[tuple[str, Fact]]:
        """Every fact of the topic with the section it sits in."""
        out: list[tuple[str, Fact]] = [("summary", self.summary)]
        for name, facts in self.sections.items():
            out.extend((name, f) for f in facts)
        if self.deadline:
            out.append(("deadline", self.deadline.fact))
        out.extend(("follow_on", s.fact) for s in self.follow_on)
        out.extend(("dates", e.fact) for e in self.events)
        return out


class PackMeta(_Strict):
    """``pack.yaml``: a pack's name and the sources its facts cite."""

    name: str
    kind: TopicKind
    description: str
    sources: dict[str, Source]
