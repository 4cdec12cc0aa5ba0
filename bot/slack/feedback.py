"""Slack's side of "feedback that teaches": the 👎 reason modal and the App Home review summary for admins.

The reason is optional: the modal opens on 👎 (``views.open`` with the click's ``trigger_id``) after the
vote is stored; closing it keeps the vote without a reason. On submit, the reason goes to the store
through the platform-neutral ``Store.record_feedback_reason`` (Teams calls the same). The message the
vote is about travels in the view's ``private_metadata``, so no server-side state is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ContextBlock,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.slack.blockkit import SECTION_MAX, escape, shorten
from handlers.feedback import REASON_LABELS, REASON_TEXT_MAX, REASONS, FeedbackReport

CALLBACK_FEEDBACK_REASON = "chinadesk_feedback_reason"
BLOCK_REASON, ACTION_REASON = "reason", "reason_choice"
BLOCK_COMMENT, ACTION_COMMENT = "comment", "comment_text"
METADATA_MAX = 3000  # Slack's private_metadata limit


@dataclass(frozen=True)
class ReasonSubmission:
    """What the modal sent back: the message the 👎 was on, and the reason (both parts optional)."""

    channel: str | None
    message_ts: str | None
    reason: str | None
    text: str | None


def reason_modal(channel: str | None, message_ts: str | None) -> dict[str, Any]:
    """The "what was wrong?" modal: a choice of reasons and a comment, both optional."""
    metadata = json.dumps({"c": channel, "m": message_ts})[:METADATA_MAX]
    view = View(
        type="modal", callback_id=CALLBACK_FEEDBACK_REASON, private_metadata=metadata,
        title=PlainTextObject(text="What was wrong?"), submit=PlainTextObject(text="Send"),
        close=PlainTextObject(text="Skip"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(
                text="Thanks for the 👎. If you tell us why, the content editors can put it right.")),
            InputBlock(
                block_id=BLOCK_REASON, label=PlainTextObject(text="The answer…"), optional=True,
                element=RadioButtonsElement(action_id=ACTION_REASON, options=[
                    Option(value=r, label=REASON_LABELS[r]) for r in REASONS if r != "other"]),
            ),
            InputBlock(
                block_id=BLOCK_COMMENT, label=PlainTextObject(text="Anything else? (optional)"), optional=True,
                element=PlainTextInputElement(action_id=ACTION_COMMENT, multiline=True, max_length=REASON_TEXT_MAX,
                                              placeholder="e.g. the fee changed in 2026"),
            ),
            ContextBlock(elements=[MarkdownTextObject(
                text="Only the content team sees this, with the question you asked.")]),
        ],
    )
    return view.to_dict()  # slack_sdk validates the modal: it is opened on a click, not on every request


def read_submission(body: dict[str, Any]) -> ReasonSubmission:
    """The submitted modal (``view_submission`` payload) -> what to store. Never raises on odd shapes."""
    view = body.get("view") if isinstance(body.get("view"), dict) else {}
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    values = (view.get("state") or {}).get("values") or {}

    def value(block: str, action: str) -> dict[str, Any]:
        found = (values.get(block) or {}).get(action) if isinstance(values, dict) else None
        return found if isinstance(found, dict) else {}

    option = value(BLOCK_REASON, ACTION_REASON).get("selected_option")
    reason = option.get("value") if isinstance(option, dict) else None
    text = value(BLOCK_COMMENT, ACTION_COMMENT).get("value")

    def text_or_none(v: Any) -> str | None:
        return v if isinstance(v, str) and v else None

    return ReasonSubmission(channel=text_or_none(meta.get("c")), message_ts=text_or_none(meta.get("m")),
                            reason=text_or_none(reason), text=text_or_none(text))


# ----------------------------------------------------------------------------- App Home: for admins

HOME_TOPICS_MAX = 5
HOME_EXAMPLES_MAX = 2


def render_feedback_summary(report: FeedbackReport, days: int) -> list[dict[str, Any]]:
    """The review queue in a few App Home blocks: the same grouping as ``chinadesk feedback report``."""
    blocks: list[Any] = [
        DividerBlock(),
        SectionBlock(text=MarkdownTextObject(text=f"*Feedback to review* (last {days} days; admins only)")),
        ContextBlock(elements=[MarkdownTextObject(text=(
            f"{report.negative_count} 👎 · {report.helpful} 👍 · {report.unanswered_count} question(s) I could "
            "not answer. Full list: `chinadesk feedback report --since YYYY-MM-DD`"))]),
    ]
    if report.empty:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="Nothing to review.")]))
    lines = []
    for topic in report.negative[:HOME_TOPICS_MAX]:
        reasons = ", ".join(f"{REASON_LABELS[r].lower()} ×{n}" for r, n in topic.reasons.items())  # type: ignore[index]
        lines.append(f"• *{escape(topic.title)}*: {topic.count} 👎" + (f" ({escape(reasons)})" if reasons else ""))
        for fact in topic.facts[:HOME_EXAMPLES_MAX]:
            said = f" — “{escape(shorten(fact.comments[0], 150))}”" if fact.comments else ""
            what = escape(shorten(fact.fact_text, 150)) if fact.fact_text else escape(fact.fact or "(no fact)")
            lines.append(f"    ◦ {what}: {fact.count}{said}")
    if lines:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=shorten("*Not right*\n" + "\n".join(lines), SECTION_MAX))))
    lines = []
    for topic in report.unanswered[:HOME_TOPICS_MAX]:
        asked = "; ".join(f"“{escape(shorten(q, 100))}”" for q in topic.questions[:HOME_EXAMPLES_MAX])
        lines.append(f"• *{escape(topic.title)}*: {topic.count}" + (f" — {asked}" if asked else ""))
    if lines:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=shorten("*Not answered*\n" + "\n".join(lines), SECTION_MAX))))
    return [b.to_dict() for b in blocks]  # shown to admins on App Home opens only
