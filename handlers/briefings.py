"""``/china-sector`` and ``/china-platform``: menus and briefing cards.

Calendar briefings (618, Double 11, Spring Festival) are listed with the sectors, since they shape
every sector's trading year.
"""

from __future__ import annotations

from handlers.cards import menu, resolve, topic_card
from handlers.request import Reply, Request
from handlers.router import Desk, router


@router.command(
    "/china-sector",
    summary="sector briefings: market size, players, policy, and the trading calendar",
    usages=[("/china-sector", "the menu of sectors and calendar briefings"),
            ("/china-sector <sector>", "a briefing, e.g. /china-sector semiconductors or /china-sector 618")],
    read_only=True,
)
async def china_sector(request: Request, desk: Desk, args: str) -> Reply:
    lang = request.answer_language()
    if not args:
        return menu(desk.library, "sector", lang=lang)
    topic = resolve(desk.library, args, ("sector", "calendar"), "/china-sector")
    return topic_card(desk.library, topic, today=request.today(), lang=lang)


@router.command(
    "/china-platform",
    summary="Chinese platforms (RED, Douyin, WeChat...) and how brands get on them",
    usages=[("/china-platform", "the menu of platforms"),
            ("/china-platform <platform>", "a briefing, e.g. /china-platform rednote")],
    read_only=True,
)
async def china_platform(request: Request, desk: Desk, args: str) -> Reply:
    lang = request.answer_language()
    if not args:
        return menu(desk.library, "platform", lang=lang)
    topic = resolve(desk.library, args, ("platform",), "/china-platform")
    return topic_card(desk.library, topic, today=request.today(), lang=lang)
