"""Plain-text rendering of a Reply, for terminals, logs and fallbacks."""

from __future__ import annotations

from content.i18n import t
from handlers.request import Reply


def render_text(reply: Reply) -> str:
    text = reply.text
    if reply.suggestions and not any(s in text for s in reply.suggestions):
        text += f"\n{t('did_you_mean', reply.language)}: " + ", ".join(reply.suggestions)
    return text
