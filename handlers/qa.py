"""Channel Q&A: free-text questions answered from the packs, or an honest "I don't know".

Interim routing until retrieval lands: a question that names a topic (by id, alias or Chinese name)
gets that topic's card; anything else gets ``no_answer``.
"""

from __future__ import annotations

from content.loader import normalise_name
from handlers.cards import topic_card
from handlers.request import Reply, Request
from handlers.router import Desk, router


def no_answer(desk: Desk, request: Request) -> Reply:
    reply = Reply(kind="no_answer", title="I don't have a vetted answer to that", text="", confidence=0.0)
    kinds = {k: sorted(t.title for t in desk.library.of_kind(k)) for k in ("filing", "sector", "platform")}
    return reply.model_copy(update={"text": desk.library.render("no_answer", kinds=kinds)})


@router.fallback
async def answer(request: Request, desk: Desk) -> Reply:
    words = f" {normalise_name(request.text)} "
    for topic in desk.library.topics.values():
        for name in desk.library.names_of(topic):
            key = normalise_name(name)
            if len(key) >= 3 and (f" {key} " in words or (not key.isascii() and key in words)):
                card = topic_card(desk.library, topic, today=request.today())
                return card.model_copy(update={"kind": "answer", "confidence": 0.5, "ephemeral": False})
    return no_answer(desk, request)
