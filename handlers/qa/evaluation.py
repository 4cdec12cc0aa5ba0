"""Evaluation: question sets, scoring every reply through the full handler chain, and the report.

A question set is YAML (held-out sets are written in it, so unknown keys are an error)::

    now: "2026-12-01T09:30:00+00:00"   # optional: the instant questions are asked (relative dates)
    answerable: [{q, any: [regex], all: [regex], lang: zh}]   # lang zh: the reply must be in Chinese
    conversations: [{turns: [{q}, {q, any, all, lang, command}]}]   # only the last turn is scored
    deadlines: [{q, command: "/china-filing <id> from YYYY-MM-DD"}]  # kind deadline, due == command's due
    out_of_scope: ["..."]

Regexes are case-insensitive; ``any``: one must match the reply text, ``all``: every one must. A turn or
deadline with ``command`` must be answered as a deadline due on the day that command gives.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from content.loader import parse_yaml
from handlers.qa.context import MemoryContexts, has_context_store
from handlers.qa.replies import answer_reply, qa_index
from handlers.request import Reply, Request, has_han, written_in_chinese
from handlers.router import Desk

ACCURACY_BAR = 0.95
ABSTENTION_BAR = 1.0
CHINESE_BAR = 0.9
FOLLOW_UP_BAR = 0.9
DEADLINE_BAR = 1.0

Category = Literal["answerable", "conversation", "deadline", "out_of_scope"]
_ANSWERED = ("answer", "deadline")


class QuestionSetError(ValueError):
    """A question set that is not in the format (an unknown key, a missing question...)."""


@dataclass(frozen=True)
class EvalItem:
    question: str
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    answerable: bool = True
    lang: str | None = None  # "zh": the reply must be written in Chinese
    category: Category = "answerable"
    turns: tuple[str, ...] = ()  # earlier turns of the same conversation, asked first
    command: str | None = None  # the answer must be this command's deadline

    def __post_init__(self) -> None:
        if not self.answerable and self.category == "answerable":
            object.__setattr__(self, "category", "out_of_scope")

    @property
    def chinese(self) -> bool:
        return self.lang == "zh" or written_in_chinese(self.question)


@dataclass(frozen=True)
class QuestionSet:
    items: list[EvalItem]
    now: dt.datetime | None = None


def _keys(where: str, data: Any, allowed: set[str], required: set[str]) -> dict:
    if not isinstance(data, dict):
        raise QuestionSetError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise QuestionSetError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(data))
    if missing:
        raise QuestionSetError(f"{where}: missing {missing}")
    return data


def _patterns(where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise QuestionSetError(f"{where}: expected a list of regexes")
    for p in value:
        try:
            re.compile(p)
        except re.error as exc:
            raise QuestionSetError(f"{where}: bad regex {p!r}: {exc}") from None
    return tuple(value)


def _lang(where: str, value: Any) -> str | None:
    if value not in (None, "zh", "en"):
        raise QuestionSetError(f"{where}: lang must be zh or en, not {value!r}")
    return value


_SCORED = {"q", "any", "all", "lang", "command"}


def _scored(where: str, raw: Any, category: Category, turns: tuple[str, ...] = ()) -> EvalItem:
    allowed = {"q", "command"} if category == "deadline" else _SCORED
    required = {"q", "command"} if category == "deadline" else {"q"}
    data = _keys(where, raw, allowed, required)
    command = data.get("command")
    if command is not None and not str(command).startswith("/china-filing "):
        raise QuestionSetError(f"{where}: command must be a /china-filing <filing> from <date> command")
    return EvalItem(str(data["q"]), _patterns(f"{where}.any", data.get("any")),
                    _patterns(f"{where}.all", data.get("all")), lang=_lang(where, data.get("lang")),
                    category=category, turns=turns,
                    command=str(command) if command is not None else None)


def read_question_set(path: Path | str) -> QuestionSet:
    """Parse a question set, refusing anything outside the format (:class:`QuestionSetError`)."""
    name = Path(path).name
    raw = parse_yaml(Path(path).read_text(encoding="utf-8")) or {}
    data = _keys(name, raw, {"now", "answerable", "conversations", "deadlines", "out_of_scope"}, set())
    now = data.get("now")
    if now is not None:
        try:
            now = now if isinstance(now, dt.datetime) else dt.datetime.fromisoformat(str(now))
        except ValueError:
            raise QuestionSetError(f"{name}: now must be an ISO-8601 date-time, not {now!r}") from None
        now = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
    items = [_scored(f"{name}: answerable[{i}]", a, "answerable") for i, a in enumerate(data.get("answerable") or ())]
    for i, conv in enumerate(data.get("conversations") or ()):
        where = f"{name}: conversations[{i}]"
        turns = _keys(where, conv, {"turns"}, {"turns"})["turns"]
        if not isinstance(turns, list) or len(turns) < 2:
            raise QuestionSetError(f"{where}: turns must list at least two turns")
        earlier = tuple(str(_keys(f"{where}.turns[{j}]", t, {"q"}, {"q"})["q"]) for j, t in enumerate(turns[:-1]))
        items.append(_scored(f"{where}.turns[{len(turns) - 1}]", turns[-1], "conversation", earlier))
    items += [_scored(f"{name}: deadlines[{i}]", d, "deadline") for i, d in enumerate(data.get("deadlines") or ())]
    for i, q in enumerate(data.get("out_of_scope") or ()):
        if not isinstance(q, str):
            raise QuestionSetError(f"{name}: out_of_scope[{i}]: expected a question (a string)")
        items.append(EvalItem(q, answerable=False, category="out_of_scope"))
    return QuestionSet(items, now)


def load_questions(path: Path | str) -> list[EvalItem]:
    """The items of a question set (see :func:`read_question_set`)."""
    return read_question_set(path).items


def half(items: Sequence[EvalItem], which: int) -> list[EvalItem]:
    """Hold-out split: half 1 (tuning) is every even-numbered item, half 2 (checking) every odd one."""
    return [it for i, it in enumerate(items) if i % 2 == which - 1]


def patterns_match(item: EvalItem, text: str) -> bool:
    flags = re.IGNORECASE
    ok_any = not item.any or any(re.search(p, text, flags) for p in item.any)
    return ok_any and all(re.search(p, text, flags) for p in item.all)


def reply_in_chinese(reply: Reply) -> bool:
    return reply.language == "zh" and has_han(reply.text)


@dataclass
class EvalResult:
    item: EvalItem
    kind: str
    confidence: float
    first_line: str
    correct: bool  # answerable: answered and right; out of scope: abstained
    candidate_right: bool  # the top candidate would be right, whatever the bar (for calibration)

    @property
    def wrong(self) -> bool:
        """Answered, but not with what was asked for (the costly error)."""
        return self.item.answerable and self.kind in _ANSWERED and not self.correct


@dataclass
class EvalReport:
    results: list[EvalResult]
    tag_differences: list[tuple[str, str]] | None = None  # --tagged: (variant, how its reply differed)
    tagged_asked: int = 0

    def _of(self, *categories: str) -> list[EvalResult]:
        return [r for r in self.results if r.item.category in categories]

    @property
    def answerable(self) -> list[EvalResult]:
        return self._of("answerable")

    @property
    def out_of_scope(self) -> list[EvalResult]:
        return self._of("out_of_scope")

    @property
    def chinese(self) -> list[EvalResult]:
        return [r for r in self.answerable if r.item.chinese]

    @property
    def follow_ups(self) -> list[EvalResult]:
        return self._of("conversation")

    @property
    def deadlines(self) -> list[EvalResult]:
        return self._of("deadline")

    @staticmethod
    def _rate(results: list[EvalResult]) -> float:
        return sum(r.correct for r in results) / len(results) if results else 1.0

    @property
    def accuracy(self) -> float:
        return self._rate(self.answerable)

    @property
    def abstention(self) -> float:
        return self._rate(self.out_of_scope)

    @property
    def wrong_answers(self) -> list[EvalResult]:
        return [r for r in self.results if r.wrong]

    @property
    def false_abstentions(self) -> int:
        return sum(r.kind == "no_answer" for r in self.answerable)

    def bars(self) -> list[tuple[str, list[EvalResult], float]]:
        """(measure, its results, its bar) for every measure this set has questions for."""
        out = [("answered right", self.answerable, ACCURACY_BAR), ("Chinese answered right", self.chinese, CHINESE_BAR),
               ("follow-ups right", self.follow_ups, FOLLOW_UP_BAR), ("deadlines right", self.deadlines, DEADLINE_BAR),
               ("out of scope abstained", self.out_of_scope, ABSTENTION_BAR)]
        return [(name, results, bar) for name, results, bar in out if results]

    @property
    def passed(self) -> bool:
        if self.tag_differences:
            return False
        return all(self._rate(results) >= bar for _, results, bar in self.bars())

    def reliability(self, bins: int = 5) -> list[dict[str, Any]]:
        """Per confidence bin: how many questions, and how often the top candidate was right."""
        out = []
        for b in range(bins):
            lo, hi = b / bins, (b + 1) / bins
            inside = [r for r in self.results if lo <= r.confidence < hi or (b == bins - 1 and r.confidence == 1)]
            right = sum(r.candidate_right for r in inside)
            mean = sum(r.confidence for r in inside) / len(inside) if inside else 0.0
            out.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": len(inside), "mean_confidence": round(mean, 3),
                        "right": round(right / len(inside), 3) if inside else None})
        return out

    def failures(self) -> list[EvalResult]:
        return [r for r in self.results if not r.correct]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "answerable": len(self.answerable),
            "out_of_scope": len(self.out_of_scope),
            "accuracy": round(self.accuracy, 4),
            "abstention_rate": round(self.abstention, 4),
            "false_abstentions": self.false_abstentions,
            "wrong_answers": len(self.wrong_answers),
            "measures": {name: {"right": sum(r.correct for r in results), "of": len(results), "bar": bar}
                         for name, results, bar in self.bars()},
            "passed": self.passed,
            "bars": {"accuracy": ACCURACY_BAR, "abstention": ABSTENTION_BAR},
            "reliability": self.reliability(),
            "failures": [
                {"q": _shown(r.item), "category": r.item.category, "expected": "answer" if r.item.answerable
                 else "no_answer", "kind": r.kind, "confidence": round(r.confidence, 3), "first_line": r.first_line}
                for r in self.failures()
            ],
        }
        if self.tag_differences is not None:
            out["tagged"] = {"asked": self.tagged_asked, "differ": len(self.tag_differences),
                             "differences": [{"q": q, "why": why} for q, why in self.tag_differences]}
        return out

    def render(self) -> str:
        lines = []
        for name, results, bar in self.bars():
            right = sum(r.correct for r in results)
            rate = self._rate(results)
            lines.append(f"{name[0].upper()}{name[1:]}: {right}/{len(results)} = {rate:.1%} (bar {bar:.0%})")
        lines.append(f"Wrong answers (answered, but not what was asked): {len(self.wrong_answers)}")
        lines.append(f"False abstentions (answerable, said no answer): {self.false_abstentions}")
        if self.tag_differences is not None:
            lines.append(f"Tagged: {len(self.tag_differences)} of {self.tagged_asked} tagged questions got a reply "
                         "different from the untagged one")
            lines += [f"  - {q!r}: {why}" for q, why in self.tag_differences]
        lines.append("Reliability (confidence bin: questions, top candidate right):")
        lines += [f"  {b['bin']}: n={b['n']:3d}  right={b['right'] if b['right'] is not None else '-'}"
                  for b in self.reliability()]
        failures = self.failures()
        if failures:
            lines.append(f"Failures ({len(failures)}):")
            for r in failures:
                want = "no_answer" if not r.item.answerable else r.item.command or "answer"
                lines.append(f"  - [{r.item.category}] {_shown(r.item)!r}: wanted {want}, got {r.kind} "
                             f"(confidence {r.confidence:.2f}): {r.first_line}")
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)


def _shown(item: EvalItem) -> str:
    return " / ".join((*item.turns, item.question))


def _due(reply: Reply) -> dt.date | None:
    if reply.kind != "deadline" or reply.deadline is None:
        return None
    due = reply.deadline.due
    return due.date() if isinstance(due, dt.datetime) else due


async def evaluate(
    desk: Desk, items: Sequence[EvalItem], *, mode: str = "direct", now: dt.datetime | None = None,
) -> EvalReport:
    """Ask every question through the full handler chain, as a DM would, and score the replies.

    Conversations share context through the desk's store, or through an in-memory one when the desk has
    none (each conversation its own thread).
    """
    if not has_context_store(desk.store):
        desk = dataclasses.replace(desk, store=MemoryContexts(), qa=qa_index(desk))
    index = qa_index(desk)
    when = now or dt.datetime.now(dt.UTC)
    results = []
    for n, item in enumerate(items):
        thread = f"eval:{n}" if item.turns else None

        def request(text: str, _thread: str | None = thread) -> Request:
            return Request(text=text, mode=mode, thread=_thread, now=when)  # type: ignore[arg-type]

        for turn in item.turns:
            await desk.handle(request(turn))
        reply = await desk.handle(request(item.question))
        match = index.match(item.question)
        asked = request(item.question)
        candidate = (answer_reply(desk.library, match, today=asked.today(), language=asked.answer_language()).text
                     if match.docs else "")
        right = item.answerable and bool(candidate) and patterns_match(item, candidate)
        if not item.answerable:
            correct = reply.kind == "no_answer"
        elif item.command:
            expected = _due(await desk.handle(Request(text=item.command, now=when)))
            correct = expected is not None and _due(reply) == expected
            right = correct
        else:
            correct = reply.kind in _ANSWERED and patterns_match(item, reply.text)
            if item.lang == "zh":
                correct = correct and reply_in_chinese(reply)
        first = next((ln for ln in reply.text.splitlines() if ln.strip()), reply.title)
        if reply.kind == "answer" and reply.summary:
            first = f"{first} | {reply.summary}"
        confidence = reply.confidence if reply.confidence is not None else match.confidence
        results.append(EvalResult(item, reply.kind, confidence, first[:200], correct, right))
    return EvalReport(results)


# Tags and filler people put around a question in Slack and Teams; none of it may change the answer.
TAGGINGS = (
    "<@U0TAGGED1> {q}",
    "hey <@U0TAGGED2|alice> {q} thanks!",
    "<!here> {q}",
    "@bob {q} cc <!subteam^S0TEAM|@china-team>",
    "<at>Alice Smith</at> {q}",
)
TAGGINGS_ZH = ("你好，{q} 谢谢", "<@U0TAGGED1> 请问{q}")


async def tagged_differences(
    desk: Desk, items: Sequence[EvalItem], *, mode: str = "direct", now: dt.datetime | None = None,
) -> tuple[int, list[tuple[str, str]]]:
    """Re-ask every answerable question wrapped in tags and filler; (asked, the variants whose reply
    differs from the untagged question's, with how)."""
    when = now or dt.datetime.now(dt.UTC)
    asked, differ = 0, []
    for item in items:
        if item.category != "answerable":
            continue
        plain = await desk.handle(Request(text=item.question, mode=mode, now=when))  # type: ignore[arg-type]
        variants = TAGGINGS + (TAGGINGS_ZH if has_han(item.question) else ())
        for pattern in variants:
            text = pattern.format(q=item.question)
            tagged = await desk.handle(Request(text=text, mode=mode, now=when))  # type: ignore[arg-type]
            asked += 1
            if (tagged.kind, tagged.text) != (plain.kind, plain.text):
                why = f"{plain.kind} -> {tagged.kind}" if tagged.kind != plain.kind else "same kind, other text"
                differ.append((text, why))
    return asked, differ
