"""Wiring: build the advice core (the Desk) once, and the aiohttp application around it."""

from __future__ import annotations

from bot.config import Settings
from content.loader import load_library
from handlers import Desk


def build_desk(settings: Settings | None = None, *, store=None) -> Desk:
    """Load content, build indexes; everything slow happens here, once, not per request."""
    settings = settings or Settings.from_env()
    library = load_library()
    return Desk(library=library, store=store, settings={"stale_days": settings.stale_days})
