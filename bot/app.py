"""Wiring: build the advice core (the Desk) once, and the aiohttp application around it.

:func:`create_app` is the one place the server is assembled; ``chinadesk serve`` runs it and tests
drive it over HTTP. It holds:

* the store (opened on start-up, closed on shutdown) and the Desk (content loaded once);
* operations: ``GET /healthz`` (the process answers), ``GET /readyz`` (database reachable, content
  loaded, not shutting down), ``GET /metrics`` (Prometheus), and :func:`bot.observability.http_middleware`
  (request ids, per-route counts and latency) around every route;
* the platform setups, in :func:`setup_platforms` (Slack; Teams' ``setup_teams``);
* background services (the reminder scheduler) in :func:`background_services`.

Graceful shutdown (``chinadesk serve`` on SIGTERM, see :mod:`bot.server`): the listening socket closes
first; :func:`begin_drain` (``on_shutdown``) turns ``/readyz`` to 503 and tells the scheduler to stop
after the pass in flight, while aiohttp lets in-flight requests finish; then the scheduler is awaited,
the Slack adapter's background answers are drained, and the store is closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.channel_cache import CachedSettingsStore
from bot.config import Settings
from bot.desk import build_desk as core_desk
from bot.observability import READY, http_middleware, metrics_endpoint, metrics_middleware
from handlers import Desk

log = logging.getLogger("chinadesk.app")

SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("chinadesk.settings", Settings)
DESK_KEY: web.AppKey[Desk] = web.AppKey("chinadesk.desk", Desk)
STORE_KEY: web.AppKey[Any] = web.AppKey("chinadesk.store", object)
SLACK_KEY: web.AppKey[Any] = web.AppKey("chinadesk.slack", object)  # bot.slack.adapter.SlackAdapter when Slack is on
BACKGROUND_KEY: web.AppKey[bool] = web.AppKey("chinadesk.background", bool)

# Shutdown budget (seconds), inside the 10 s a platform usually allows between SIGTERM and SIGKILL:
# in-flight HTTP requests get HTTP_GRACE (bot.server), the scheduler's pass in flight SCHEDULER_GRACE
# (from SIGTERM, concurrently), then the Slack adapter's background answers SLACK_GRACE.
HTTP_GRACE = 4.0
SCHEDULER_GRACE = 5.0
SLACK_GRACE = 3.0


@dataclass
class Lifecycle:
    """What the operations endpoints and the shutdown sequence share."""

    draining: bool = False
    scheduler: Any = None  # bot.scheduler.Scheduler while it runs
    scheduler_stopping: asyncio.Task | None = None
    stop: asyncio.Event | None = None  # chinadesk serve's stop signal (bot.server sets it)
    failure: str | None = None  # why the process must stop with status 2 (a rejected credential)

    def fail(self, message: str) -> None:
        """A background service found the configuration unusable: stop the server, which exits with 2."""
        self.failure = message
        if self.stop is not None:
            self.stop.set()


LIFECYCLE_KEY: web.AppKey[Lifecycle] = web.AppKey("chinadesk.lifecycle", Lifecycle)


def build_desk(settings: Settings | None = None, *, store=None) -> Desk:
    """The server's Desk: :func:`bot.desk.build_desk` with everything built now and metrics in its chain."""
    return core_desk(settings, store=store, middleware=[metrics_middleware], qa="now")


def with_metrics(desk: Desk) -> Desk:
    """``desk`` with :func:`bot.observability.metrics_middleware` in its chain (added once)."""
    if metrics_middleware in desk.middleware:
        return desk
    return dataclasses.replace(desk, middleware=[metrics_middleware, *desk.middleware])


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


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 when the database answers and the content is loaded, 503 otherwise (and from
    the moment a graceful shutdown begins, so that a load balancer stops sending new work)."""
    app = request.app
    desk, store, lifecycle = app[DESK_KEY], app[STORE_KEY], app[LIFECYCLE_KEY]
    topics = len(desk.library.topics) if desk.library is not None else 0
    content = topics > 0
    database = await store.ping()
    ready = content and database and not lifecycle.draining
    READY.set(1 if ready else 0)
    body = {
        "status": "ready" if ready else ("draining" if lifecycle.draining else "not ready"),
        "database": database, "content": content, "topics": topics, "qa_index": desk.qa is not None,
        "scheduler": lifecycle.scheduler is not None and lifecycle.scheduler.running,
    }
    return web.json_response(body, status=200 if ready else 503)


def metrics_route(token: str | None):
    """``GET /metrics``; with ``METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``."""
    if not token:
        return metrics_endpoint
    expected = f"Bearer {token}".encode()

    async def guarded(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
            return web.json_response({"error": "unauthorized"}, status=401)
        return await metrics_endpoint(request)

    return guarded


def setup_platforms(app: web.Application, settings: Settings, desk: Desk, store: Any) -> None:
    """PLATFORM SETUPS: each platform adds its routes here, switched on by its own settings.

    Slack: ``POST /slack/events`` (+ OAuth routes) when SLACK_* variables are set.
    Teams: ``POST /api/messages`` via ``bot.teams.engine.setup_teams`` (local Emulator mode without an app id).
    The local chat page: ``GET /`` and ``POST /chat/api`` via ``bot.web.setup_web_chat`` when ``WEB_CHAT`` allows
    (by default only on a loopback address: see ``Settings.bound_to``).
    """
    if settings.slack is not None:
        from bot.slack.adapter import setup_slack

        app[SLACK_KEY] = setup_slack(app, settings.slack, default_timezone=settings.default_timezone)

    if getattr(settings, "teams", None) is not None:
        from bot.teams.engine import setup_teams

        setup_teams(app, settings=settings, desk=desk, store=store)

    if settings.web_chat:
        from bot.web import setup_web_chat

        setup_web_chat(app, desk, default_timezone=settings.default_timezone, any_host=settings.web_chat_public)


def _scheduler_factory() -> Any:
    """``bot.platforms.build_scheduler``: the scheduler with every deliverer this process is configured for."""
    from bot.platforms import build_scheduler

    return build_scheduler


async def background_services(app: web.Application) -> AsyncIterator[None]:
    """BACKGROUND SERVICES: started after the store is open, stopped before it closes.

    The reminder scheduler (``bot.scheduler``) polls for due posts here, in every serving process
    (its claims make concurrent replicas safe). Slack Socket Mode connects here too, since it is an
    outbound connection rather than a route.
    """
    slack = app.get(SLACK_KEY)
    lifecycle = app[LIFECYCLE_KEY]
    if slack is not None and slack.settings.socket_mode:
        slack.start_socket_mode(on_rejected=lifecycle.fail)  # connects in the background
    scheduler = None
    factory = _scheduler_factory() if app[BACKGROUND_KEY] else None
    if factory is not None:
        scheduler = factory(app[STORE_KEY], app[DESK_KEY])
        await scheduler.start()
        lifecycle.scheduler = scheduler
    READY.set(1)  # store open, content loaded, services started: ready, whether or not anything probes
    try:
        yield
    finally:
        if scheduler is not None:
            # Usually begun by begin_drain at SIGTERM (concurrently with in-flight requests); await it here.
            stopping = lifecycle.scheduler_stopping or asyncio.ensure_future(scheduler.stop(SCHEDULER_GRACE))
            await stopping
            lifecycle.scheduler = None


async def begin_drain(app: web.Application) -> None:
    """``on_shutdown``: the listening socket is already closed. Turn ``/readyz`` to 503, and ask the
    scheduler to stop after the pass in flight, while aiohttp lets in-flight requests finish."""
    lifecycle = app[LIFECYCLE_KEY]
    lifecycle.draining = True
    READY.set(0)
    if lifecycle.scheduler is not None and lifecycle.scheduler_stopping is None:
        lifecycle.scheduler_stopping = asyncio.ensure_future(lifecycle.scheduler.stop(SCHEDULER_GRACE))
    log.info("shutting down: finishing in-flight work", extra={"scheduler": lifecycle.scheduler is not None})


def create_app(
    settings: Settings | None = None, desk: Desk | None = None, store: Any = None, *, background: bool = True,
    metrics_token: str | None = None,
) -> web.Application:
    """The aiohttp application: operations endpoints, the platforms, storage and background services.

    ``store``: an *opened* store the caller owns (tests); by default one is opened from
    ``settings.database_url`` on start-up and closed on shutdown. ``desk``: a built Desk to reuse
    (tests share one); it is copied so that this app's store does not leak into the caller's Desk.
    ``background=False`` leaves the reminder scheduler off (tests that drive it themselves; web
    replicas when a separate ``chinadesk worker`` runs it). ``metrics_token``: require it as a bearer
    token on ``/metrics`` (default: the settings' ``METRICS_TOKEN``; unset means open).
    """
    from bot.store import open_store

    settings = settings or Settings.from_env()
    owns_store = store is None
    store = store if store is not None else open_store(settings.database_url, token_keys=settings.token_keys_value)
    # The core and the Slack adapter read channel settings on every request: cached (bot.channel_cache).
    cached = CachedSettingsStore(store)
    desk = dataclasses.replace(desk, store=cached) if desk is not None else build_desk(settings, store=cached)
    desk = with_metrics(desk)
    if metrics_token is None and settings.server.metrics_token is not None:
        metrics_token = settings.server.metrics_token.get_secret_value()

    app = web.Application(middlewares=[http_middleware])
    app[SETTINGS_KEY] = settings
    app[DESK_KEY] = desk
    app[STORE_KEY] = store
    app[BACKGROUND_KEY] = background
    app[LIFECYCLE_KEY] = Lifecycle()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_route(metrics_token))
    setup_platforms(app, settings, desk, store)

    async def storage(app: web.Application) -> AsyncIterator[None]:
        if owns_store:
            await store.open()
        slack = app.get(SLACK_KEY)
        if slack is not None:
            slack.attach(desk, cached)
        try:
            yield
        finally:
            READY.set(0)
            if slack is not None:
                await slack.close(SLACK_GRACE)  # finish in-flight answers while the store is still open
            if owns_store:
                await store.close()

    app.cleanup_ctx.append(storage)
    app.cleanup_ctx.append(background_services)
    app.on_shutdown.append(begin_drain)
    return app
