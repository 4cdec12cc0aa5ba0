"""Evaluation: question sets, scoring every reply through the full handler chain, and the report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from content.loader import parse_yaml
from handlers.qa.replies import answer_reply, qa_index
from handlers.request import Request
from handlers.router import Desk

# ----------------------------------------------------------------------------------------- evaluation

ACCURACY_BAR = 0.95
ABSTENTION_BAR = 1.0


@dataclass(frozen=True)
class EvalItem:
    question: str
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    answerable: bool = True


def load_questions(path: Path | str) -> list[EvalItem]:
    """The ``dev_questions.yaml`` format: ``answerable`` (q, any, all) and ``out_of_scope`` lists."""
    raw = parse_yaml(Path(path).read_text(encoding="utf-8")) or {}
    items = [
        EvalItem(str(a["q"]), tuple(a.get("any") or ()), tuple(a.get("all") or ()))
        for a in raw.get("answerable") or ()
    ]
    items += [EvalItem(str(q), answerable=False) for q in raw.get("out_of_scope") or ()]
    return items


def half(items: Sequence[EvalItem], which: int) -> list[EvalItem]:
    """Hold-out split: half 1 (tuning) is every even-numbered item, half 2 (checking) every odd one."""
    return [it for i, it in enumerate(items) if i % 2 == which - 1]


def patterns_match(item: EvalItem, text: str) -> bool:
    flags = re.IGNORECASE
    ok_any = not item.any or any(re.search(p, text, flags) for p in item.any)
    return ok_any and all(re.search(p, text, flags) for p in item.all)


@dataclass
class EvalResult:
    item: EvalItem
    kind: str
    confidence: float
    first_line: str
    correct: bool  # answerable: answered and right; out of scope: abstained
    candidate_right: bool  # the top candidate would be right, whatever the bar (for calibration)


@dataclass
class EvalReport:
    results: list[EvalResult]

    @property
    def answerable(self) -> list[EvalResult]:
        return [r for r in self.results if r.item.answerable]

    @property
    def out_of_scope(self) -> list[EvalResult]:
        return [r for r in self.results if not r.item.answerable]

    @property
    def accuracy(self) -> float:
        a = self.answerable
        return sum(r.correct for r in a) / len(a) if a else 1.0

    @property
    def abstention(self) -> float:
        o = self.out_of_scope
        return sum(r.correct for r in o) / len(o) if o else 1.0

    @property
    def false_abstentions(self) -> int:
        return sum(r.kind == "no_answer" for r in self.answerable)

    @property
    def passed(self) -> bool:
        return self.accuracy >= ACCURACY_BAR and self.abstention >= ABSTENTION_BAR

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
        return {
            "answerable": len(self.answerable),
            "out_of_scope": len(self.out_of_scope),
            "accuracy": round(self.accuracy, 4),
            "abstention_rate": round(self.abstention, 4),
            "false_abstentions": self.false_abstentions,
            "passed": self.passed,
            "bars": {"accuracy": ACCURACY_BAR, "abstention": ABSTENTION_BAR},
            "reliability": self.reliability(),
            "failures": [
                {"q": r.item.question, "expected": "answer" if r.item.answerable else "no_answer", "kind": r.kind,
                 "confidence": round(r.confidence, 3), "first_line": r.first_line}
                for r in self.failures()
            ],
        }

    def render(self) -> str:
        a, o = self.answerable, self.out_of_scope
        lines = [
            f"Answered right: {sum(r.correct for r in a)}/{len(a)} = {self.accuracy:.1%} (bar {ACCURACY_BAR:.0%})",
            f"Out of scope abstained: {sum(r.correct for r in o)}/{len(o)} = {self.abstention:.1%} "
            f"(bar {ABSTENTION_BAR:.0%})",
            f"False abstentions (answerable, said no answer): {self.false_abstentions}",
            "Reliability (confidence bin: questions, top candidate right):",
        ]
        lines += [f"  {b['bin']}: n={b['n']:3d}  right={b['right'] if b['right'] is not None else '-'}"
                  for b in self.reliability()]
        failures = self.failures()
        if failures:
            lines.append(f"Failures ({len(failures)}):")
            for r in failures:
                want = "answer" if r.item.answerable else "no_answer"
                lines.append(f"  - {r.item.question!r}: wanted {want}, got {r.kind} "
                             f"(confidence {r.confidence:.2f}): {r.first_line}")
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)


async def evaluate(desk: Desk, items: Sequence[EvalItem], *, mode: str = "direct") -> EvalReport:
    """Ask every question through the full handler chain, as a DM would, and score the replies."""
    index = qa_index(desk)
    results = []
    for item in items:
        reply = await desk.handle(Request(text=item.question, mode=mode))  # type: ignore[arg-type]
        match = index.match(item.question)
        candidate = ""
        if match.docs:
            candidate = answer_reply(desk.library, match, today=Request(text="").today()).text
        right = item.answerable and bool(candidate) and patterns_match(item, candidate)
        if item.answerable:
            correct = reply.kind != "no_answer" and reply.kind != "error" and patterns_match(item, reply.text)
        else:
            correct = reply.kind == "no_answer"
        first = next((ln for ln in reply.text.splitlines() if ln.strip()), reply.title)
        if reply.kind == "answer" and reply.summary:
            first = f"{first} | {reply.summary}"
        confidence = reply.confidence if reply.confidence is not None else match.confidence
        results.append(EvalResult(item, reply.kind, confidence, first[:200], correct, right))
    return EvalReport(results)
