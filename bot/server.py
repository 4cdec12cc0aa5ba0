"""``chinadesk serve``: run the aiohttp application from :func:`bot.app.create_app`.

The server runs on aiohttp's ``AppRunner`` + ``TCPSite`` with its own signal handling, so that a
SIGTERM (a PaaS restarting or scaling down, ``kill``) or SIGINT (Ctrl-C) is a graceful stop:

1. the listening socket closes: new connections are refused (the platform's router retries them on
   another replica) and ``/readyz`` answers 503 to connections still open;
2. requests in flight finish (up to :data:`bot.app.HTTP_GRACE` seconds); keep-alive connections close
   after their current request; at the same time the reminder scheduler finishes the pass in flight
   and claims nothing more (:data:`bot.app.SCHEDULER_GRACE`);
3. the Slack adapter's background answers (work acknowledged before the signal) are drained
   (:data:`bot.app.SLACK_GRACE`), the store is closed, and the process exits 0.

All of it fits in :data:`STOP_DEADLINE` seconds (platforms usually allow 10 before SIGKILL); whatever
the scheduler had claimed but not posted is re-offered by another process after its lease. A call still
blocked in a worker thread after that (a Teams reply to a connector that never answers) is not waited
for: see :func:`_close_loop`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from aiohttp import web

from bot.app import HTTP_GRACE, LIFECYCLE_KEY, create_app, platforms_on
from bot.config import ConfigError, Settings

log = logging.getLogger("chinadesk.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
STOP_DEADLINE = 9.5  # seconds from the signal to the end of the clean-up, whatever happens
EXECUTOR_GRACE = 0.4  # then this long for worker threads (see _close_loop): within 10 s in all
BACKLOG = 1024


def startup_lines(settings: Settings, host: str, port: int) -> list[str]:
    """What ``serve`` says once it listens: where, what is on, where the data lives (never a secret)."""
    on = platforms_on(settings)
    lines = [f"China Desk listening on http://{host}:{port}  (GET /healthz, /readyz, /metrics)"]
    lines.append("Platforms on: " + (", ".join(on) if on else "none (local endpoints only)"))
    if settings.slack is None:
        lines.append("Slack: off (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN, or see README 'Install in Slack')")
    if settings.teams is None:
        lines.append("Teams: off (set CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID/CLIENTSECRET/TENANTID, "
                     "or see README 'Install in Teams')")
    if settings.web_chat:
        where = f"[{host}]" if ":" in host else host
        lines.append(f"Chat page: http://{where}:{port}/  (try the bot in a browser; WEB_CHAT=off turns it off)")
    database = settings.database_url.split("@")[-1] if "@" in settings.database_url else settings.database_url
    lines.append(f"Database: {database}")
    return lines


def serve(settings: Settings, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, background: bool = True) -> None:
    """Build the app and run it until SIGTERM/SIGINT, then stop gracefully (see the module docstring).

    ``background=False``: no reminder scheduler in this process (a separate ``chinadesk worker`` runs it).
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    executor = _TrackedExecutor()
    loop.set_default_executor(executor)
    failed = True
    try:
        loop.run_until_complete(run_server(settings, host=host, port=port, background=background))
        failed = False
    finally:
        _close_loop(loop, executor, exit_status=1 if failed else 0)


class _TrackedExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting the calls still running in its threads."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="asyncio")
        self._running = 0
        self._lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            self._running += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future) -> None:
        with self._lock:
            self._running -= 1

    @property
    def running(self) -> int:
        return self._running


def _close_loop(loop: asyncio.AbstractEventLoop, executor: _TrackedExecutor, *, exit_status: int) -> None:
    """``asyncio.run``'s clean-up, except that it does not wait for ever on the executor's threads.

    Some calls run in those threads and may never return in time: botbuilder sends Teams replies with
    ``requests`` in the default executor (a 100 s timeout), and a DNS lookup can hang. asyncio would wait
    for them, and so would the interpreter at exit, long after a platform's SIGKILL. After
    :data:`EXECUTOR_GRACE` seconds the process leaves without them (everything else is closed by then).
    """
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + EXECUTOR_GRACE
    while executor.running and time.monotonic() < deadline:
        time.sleep(0.02)
    if executor.running:
        log.warning("exiting without waiting for %d blocked worker thread(s) (a call that never returned)",
                    executor.running)
        logging.shutdown()
        os._exit(exit_status)  # the interpreter's own exit would join the blocked threads


async def run_server(
    settings: Settings, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, background: bool = True,
    stop: asyncio.Event | None = None,
) -> None:
    """The serving coroutine: returns after a graceful stop (``stop`` set, or SIGTERM/SIGINT)."""
    started = time.perf_counter()
    stop = stop or asyncio.Event()
    bound = settings.bound_to(host)
    if bound.teams is None and settings.teams is not None:
        log.warning("Teams is off: no app id (CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID or MICROSOFT_APP_ID) "
                    "is set and the server listens on %s, so the unauthenticated "
                    "local (Emulator) mode stays off; set TEAMS=local to run it there anyway", host)
    settings = bound
    loop = asyncio.get_running_loop()
    signals = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, _on_signal, stop, sig)
            signals.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread / not on this platform
            pass

    # Start-up allocates ~1M long-lived objects (content, the Q&A index, jieba's dictionary): no cyclic
    # GC while it does, then move them all to the permanent generation, so that later full collections
    # do not walk them on every request burst (a p99 cost otherwise).
    gc.disable()
    try:
        app = create_app(settings, background=background)  # content and the Q&A index load here, once
    finally:
        gc.freeze()
        gc.enable()
    lifecycle = app[LIFECYCLE_KEY]
    lifecycle.stop = stop  # a background service that finds a credential rejected stops the server
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_GRACE, handle_signals=False)
    await runner.setup()  # opens the store (migrations), starts the scheduler
    try:
        site = web.TCPSite(runner, host, port, backlog=BACKLOG)
        await site.start()
        bound_port = _bound_port(site) or port
        for line in startup_lines(settings, host, bound_port):
            log.info(line)  # through the logger: one JSON object a line in JSON logs, like everything else
        log.info("ready", extra={"port": bound_port, "startup_s": round(time.perf_counter() - started, 3)})
        await stop.wait()
        log.info("stopping: no new connections; finishing in-flight work")
    finally:
        stopping = time.perf_counter()
        try:
            await asyncio.wait_for(runner.cleanup(), STOP_DEADLINE)
        except TimeoutError:
            log.error("clean-up did not finish within %.1f s; exiting anyway", STOP_DEADLINE)
        for sig in signals:
            loop.remove_signal_handler(sig)
        log.info("stopped", extra={"shutdown_s": round(time.perf_counter() - stopping, 3)})
    if lifecycle.failure:
        raise ConfigError(lifecycle.failure)  # `chinadesk serve` exits with status 2


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        log.info("received %s", sig.name)
    stop.set()


def _bound_port(site: web.TCPSite) -> int | None:
    """The port actually bound (``--port 0`` picks a free one; tests and benchmarks use that)."""
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    return sockets[0].getsockname()[1] if sockets else None
