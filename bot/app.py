"""Wiring: build the advice core (the Desk) once, and the aiohttp application around it.

:func:`create_app` is the one place the server is assembled; ``chinadesk serve`` runs it and tests
drive it over HTTP. It holds:

* the store (opened on start-up, closed on shutdown) and the Desk (content loaded once);
* ``GET /healthz``;
* the platform setups, in :func:`setup_platforms` (Slack now; Teams' ``setup_teams``);
* background services (the reminder scheduler) in :func:`background_services`.

Later additions (``/readyz``, ``/metrics``, more platforms) plug into those named spots.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bot.config import Settings
from content.loader import load_library
from handlers import Desk
from handlers.qa import QAIndex

log = logging.getLogger("chinadesk.app")

SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("chinadesk.settings", Settings)
DESK_KEY: web.AppKey[Desk] = web.AppKey("chinadesk.desk", Desk)
STORE_KEY: web.AppKey[Any] = web.AppKey("chinadesk.store", object)
SLACK_KEY: web.AppKey[Any] = web.AppKey("chinadesk.slack", object)  # bot.slack.SlackAdapter when Slack is on
BACKGROUND_KEY: web.AppKey[bool] = web.AppKey("chinadesk.background", bool)


def build_desk(settings: Settings | None = None, *, store=None) -> Desk:
    """Load content, build indexes; everything slow happens here, once, not per request."""
    settings = settings or Settings.from_env()
    library = load_library()
    desk = Desk(library=library, store=store, settings={"stale_days": settings.stale_days})
    desk.qa = QAIndex.build(library)  # channel Q&A retrieval index: built once, here, not per question
    return desk


def platforms_on(settings: Settings) -> list[str]:
    """Human-readable list of what this configuration serves (for the start-up line)."""
    out = []
    slack = settings.slack
    if slack is not None:
        how = "Socket Mode" if slack.socket_mode else "HTTP /slack/events"
        who = "OAuth installs" if slack.oauth else "one workspace"
        out.append(f"Slack ({how}, {who})")
    teams = getattr(settings, "teams", None)
    if teams is not None:
        out.append("Teams (local Emulator mode)" if getattr(teams, "local_mode", False) else "Teams")
    return out


async def healthz(_request: web.Request) -> web.Response:
    """Liveness: the process answers HTTP. (Readiness, with the database, is ``/readyz``'s job.)"""
    return web.json_response({"status": "ok"})


def setup_platforms(app: web.Application, settings: Settings, desk: Desk, store: Any) -> None:
    """PLATFORM SETUPS: each platform adds its routes here, switched on by its own settings.

    Slack: ``POST /slack/events`` (+ OAuth routes) when SLACK_* variables are set.
    Teams: ``POST /api/messages`` via ``bot.teams.setup_teams`` (local Emulator mode without an app id).
    """
    if settings.slack is not None:
        from bot.slack import setup_slack

        app[SLACK_KEY] = setup_slack(app, settings.slack, default_timezone=settings.default_timezone)

    if getattr(settings, "teams", None) is not None:
        from bot.teams import setup_teams

        setup_teams(app, settings=settings, desk=desk, store=store)


def _scheduler_factory() -> Any:
    """``bot.scheduler.build_scheduler`` when the reminders work provides it, else None (no reminders)."""
    try:
        from bot import scheduler
    except ImportError:
        return None
    return getattr(scheduler, "build_scheduler", None)


async def background_services(app: web.Application) -> AsyncIterator[None]:
    """BACKGROUND SERVICES: started after the store is open, stopped before it closes.

    The reminder scheduler (``bot.scheduler``) polls for due posts here, in every serving process
    (its claims make concurrent replicas safe). Slack Socket Mode connects here too, since it is an
    outbound connection rather than a route.
    """
    slack = app.get(SLACK_KEY)
    if slack is not None and slack.settings.socket_mode:
        await slack.start_socket_mode()
    scheduler = None
    factory = _scheduler_factory() if app[BACKGROUND_KEY] else None
    if factory is not None:
        scheduler = factory(app[STORE_KEY], app[DESK_KEY])
        await scheduler.start()
    try:
        yield
    finally:
        if scheduler is not None:
            await scheduler.stop()


def create_app(
    settings: Settings | None = None, desk: Desk | None = None, store: Any = None, *, background: bool = True,
) -> web.Application:
    """The aiohttp application: health, the platforms, storage and background services.

    ``store``: an *opened* store the caller owns (tests); by default one is opened from
    ``settings.database_url`` on start-up and closed on shutdown. ``desk``: a built Desk to reuse
    (tests share one); it is copied so that this app's store does not leak into the caller's Desk.
    ``background=False`` leaves the reminder scheduler off (tests that drive it themselves).
    """
    from bot.store import open_store

    settings = settings or Settings.from_env()
    owns_store = store is None
    store = store if store is not None else open_store(settings.database_url)
    desk = dataclasses.replace(desk, store=store) if desk is not None else build_desk(settings, store=store)

    app = web.Application()
    app[SETTINGS_KEY] = settings
    app[DESK_KEY] = desk
    app[STORE_KEY] = store
    app[BACKGROUND_KEY] = background
    app.router.add_get("/healthz", healthz)
    setup_platforms(app, settings, desk, store)

    async def storage(app: web.Application) -> AsyncIterator[None]:
        if owns_store:
            await store.open()
        slack = app.get(SLACK_KEY)
        if slack is not None:
            slack.attach(desk, store)
        try:
            yield
        finally:
            if slack is not None:
                await slack.close()  # finish in-flight answers while the store is still open
            if owns_store:
                await store.close()

    app.cleanup_ctx.append(storage)
    app.cleanup_ctx.append(background_services)
    return app
