"""``chinadesk serve``: run the aiohttp application from :func:`bot.app.create_app`."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from bot.app import create_app, platforms_on
from bot.config import Settings

log = logging.getLogger("chinadesk.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def startup_lines(settings: Settings, host: str, port: int) -> list[str]:
    """What ``serve`` says before it listens: where, what is on, where the data lives (never a secret)."""
    on = platforms_on(settings)
    lines = [f"China Desk listening on http://{host}:{port}  (GET /healthz)"]
    lines.append("Platforms on: " + (", ".join(on) if on else "none (local endpoints only)"))
    if settings.slack is None:
        lines.append("Slack: off (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN, or see README 'Install in Slack')")
    database = settings.database_url.split("@")[-1] if "@" in settings.database_url else settings.database_url
    lines.append(f"Database: {database}")
    return lines


def serve(settings: Settings, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Build the app and run it until interrupted (SIGINT/SIGTERM shut it down cleanly)."""
    app = create_app(settings)
    for line in startup_lines(settings, host, port):
        print(line, file=sys.stderr, flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None)
