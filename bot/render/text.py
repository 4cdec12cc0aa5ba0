"""Plain-text rendering of a Reply, for terminals, logs and fallbacks."""

from __future__ import annotations

from handlers.request import Reply


def render_text(reply: Reply) -> str:
    text = reply.text
    if reply.suggestions and not any(s in text for s in reply.suggestions):
        text += "\nDid you mean: " + ", ".join(reply.suggestions)
    return text
