"""Plain-text rendering of a Reply, for terminals, logs and fallbacks."""

from __future__ import annotations

from typing import Any

from content.i18n import t
from handlers.request import Reply


def render_text(reply: Reply) -> str:
    """The reply as text, user text still escaped as :func:`handlers.request.echo` left it (safe to put into
    a chat message's fallback text, as Teams does)."""
    text = reply.text
    if reply.suggestions and not any(s in text for s in reply.suggestions):
        text += f"\n{t('did_you_mean', reply.language)}: " + ", ".join(reply.suggestions)
    return text


def unescape(text: str) -> str:
    """Undo :func:`handlers.request.echo`'s ``& < >`` entities, for a surface with no markup (a terminal, a
    JSON reader): ``R&amp;D &lt;tax&gt;`` is shown as the user typed it, ``R&D <tax>``. Only those three
    entities, ``&amp;`` last, so ``&amp;lt;`` (a user who typed ``&lt;``) becomes ``&lt;`` again."""
    if "&" not in text:
        return text
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_plain(reply: Reply) -> str:
    """:func:`render_text` for a terminal: plain text, no chat escaping."""
    return unescape(render_text(reply))


def plain_json(value: Any) -> Any:
    """A reply's JSON (``Reply.as_json()``) with every string as plain text (see :func:`unescape`)."""
    if isinstance(value, str):
        return unescape(value)
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value
