"""The ``chinadesk`` command line: ask the bot, check content, run the server and operations."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import Callable

from bot.config import ConfigError, Settings, _int
from bot.render.text import render_text
from content.loader import ContentError
from handlers.request import DEFAULT_TIMEZONE, Request


class CliUsageError(Exception):
    """Bad command-line usage: one line on stderr, exit status 2."""


def _now(value: str | None) -> dt.datetime:
    if not value:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CliUsageError(f"--now must be an ISO-8601 date or date-time, not {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def cmd_ask(args: argparse.Namespace) -> int:
    from bot.app import build_desk

    text = " ".join(args.text)
    if not text.strip():
        raise CliUsageError("ask needs some text, e.g. chinadesk ask \"/china-filing facial-recognition\"")

    async def run() -> dict | str:
        desk = build_desk(Settings.from_env())
        request = Request(
            text=text,
            platform=args.platform,
            mode="command" if text.lstrip().startswith("/") else "direct",
            user=args.user,
            channel=args.channel,
            timezone=args.timezone,
            now=_now(args.now),
        )
        reply = await desk.handle(request)
        return reply.as_json() if args.json else render_text(reply)

    out = asyncio.run(run())
    if isinstance(out, dict):
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(out)
    return 0


def cmd_content_check(args: argparse.Namespace) -> int:
    from content.loader import check_library

    report = check_library(args.packs, stale_days=args.stale_days)
    print(report.render())
    return 0 if report.ok else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.observability import configure_logging
    from bot.server import serve
    from bot.store import StoreError

    settings = Settings.from_env(socket_mode=True if args.socket_mode else None)
    configure_logging(settings.log_level, settings.log_format)
    port = args.port if args.port is not None else int(os.environ.get("PORT", "") or 8080)
    try:
        serve(settings, host=args.host, port=port)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:  # address in use, permission denied...
        raise CliUsageError(f"cannot listen on {args.host}:{port}: {exc.strerror or exc}") from None
    return 0


def cmd_teams_package(args: argparse.Namespace) -> int:
    """Build the Teams app package (manifest with the bot's app id + the two icons) an admin uploads."""
    from pathlib import Path

    from bot.teams import build_app_package

    try:
        out = build_app_package(args.app_id, Path(args.out))
    except ValueError as exc:
        raise CliUsageError(str(exc)) from None
    except OSError as exc:  # unwritable --out, a directory in the way...
        raise CliUsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {out}: upload it in Teams (Apps > Manage your apps > Upload an app)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chinadesk", description="China Desk: vetted China market-entry advice")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ask = sub.add_parser("ask", help="ask the bot one thing, exactly as a chat message would")
    ask.add_argument("text", nargs="*", help="a slash command (/china-filing ...) or a question")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument("--platform", choices=["slack", "teams", "text"], default="text")
    ask.add_argument("--channel", default=None, help="act as if typed in this channel")
    ask.add_argument("--user", default="cli")
    ask.add_argument("--timezone", default=DEFAULT_TIMEZONE)
    ask.add_argument("--now", default=None, help="pretend it is this instant (ISO-8601)")
    ask.set_defaults(func=cmd_ask)

    serve = sub.add_parser("serve", help="run the server (Slack, Teams, health) on one port")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default $PORT, else 8080)")
    serve.add_argument("--socket-mode", action="store_true",
                       help="connect to Slack over Socket Mode (needs SLACK_APP_TOKEN) instead of a public URL")
    serve.set_defaults(func=cmd_serve)

    content = sub.add_parser("content", help="content pack tools")
    content_sub = content.add_subparsers(dest="content_command", metavar="ACTION")
    check = content_sub.add_parser("check", help="validate every content pack")
    check.add_argument("--packs", default=None, help="packs folder (default: the installed packs)")
    # Only CONTENT_STALE_DAYS here: reading every setting would make a bad Slack/Teams variable break
    # `content check` and `--help` too, and the parser is built before main() can report it.
    check.add_argument("--stale-days", type=int, default=_int(os.environ, "CONTENT_STALE_DAYS", 365),
                       help="warn about facts older than this many days (default 365, env CONTENT_STALE_DAYS)")
    check.set_defaults(func=cmd_content_check)

    package = sub.add_parser("teams-package", help="build the Teams app package (zip) for an admin to upload")
    package.add_argument("--app-id", required=True, help="the Azure Bot's Microsoft App ID (a GUID)")
    package.add_argument("--out", default="chinadesk-teams.zip", help="zip to write (default chinadesk-teams.zip)")
    package.set_defaults(func=cmd_teams_package)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return func(args)
    except (CliUsageError, ConfigError) as exc:
        print(f"chinadesk: {exc}", file=sys.stderr)
        return 2
    except ContentError as exc:
        print(f"chinadesk: {len(exc.problems)} problem(s) in the content packs; run `chinadesk content check`",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `chinadesk ask ... | head` closed the pipe early: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
