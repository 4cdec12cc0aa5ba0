"""One parser and dispatcher for every surface.

Features register themselves the way bolt-python listeners do::

    @router.command("/china-filing")                      # /china-filing [args]
    @router.subcommand("/china-filing", "remind", usage=...)  # /china-filing remind ...
    @router.fallback                                      # anything that is not a command (channel Q&A)

Slack hands us the command separately; Teams and the CLI give one line of text (``china-filing x``,
``filing x from 2025-09-20``, ``/china-filing x``), which :func:`split_command` reads the same way.
Cross-cutting concerns (turning user mistakes into friendly replies, timing, metrics) are middleware
around :meth:`Desk.handle`, not code in each handler.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache

from content.calendar import ChinaCalendar, china_calendar
from content.i18n import Both, has, msg, t
from content.loader import Library
from handlers.request import (
    MAX_INPUT_CHARS,
    InputTooLargeError,
    Language,
    LanguageChoice,
    Reply,
    Request,
    UnknownTopicError,
    UsageError,
    UserError,
    clean_input,
    echo,
)

log = logging.getLogger("chinadesk.handlers")

Handler = Callable[[Request, "Desk", str], Awaitable[Reply]]
Fallback = Callable[[Request, "Desk"], Awaitable[Reply]]
Middleware = Callable[[Request, "Desk", Callable[[Request], Awaitable[Reply]]], Awaitable[Reply]]

COMMANDS = ("/china-filing", "/china-sector", "/china-platform")
_WORDS = {
    "china-filing": "/china-filing", "china-filings": "/china-filing", "filing": "/china-filing",
    "filings": "/china-filing", "china-sector": "/china-sector", "china-sectors": "/china-sector",
    "sector": "/china-sector", "sectors": "/china-sector", "china-platform": "/china-platform",
    "china-platforms": "/china-platform", "platform": "/china-platform", "platforms": "/china-platform",
}
HELP_WORDS = ("help", "?", "usage")
_LEAD = re.compile(r"^(?P<slash>/?)(?P<word>[a-z-]+)(?:\s+(?P<rest>.*))?$", re.IGNORECASE | re.DOTALL)
# `--lang en` after any command or question: that one reply in that language (the other-language button
# sends it). Dashes that phones and word processors make of `--` are accepted too.
_LANG_FLAG = re.compile(r"(?:^|\s)(?:--|[—–])lang(?:\s*=\s*|\s+|$)(?P<value>\S*)", re.IGNORECASE)
LANGUAGE_CHOICES: tuple[LanguageChoice, ...] = ("auto", "en", "zh")


@dataclass
class Subcommand:
    handler: Handler
    usage: str
    summary: str
    read_only: bool = False  # like a command's: the reply depends only on the text, time zone, day, language
    changes_state: bool = False  # runs once per request (see run_once)


@dataclass
class Router:
    commands: dict[str, Handler] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    usages: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    subcommands: dict[str, dict[str, Subcommand]] = field(default_factory=dict)
    read_only: set[str] = field(default_factory=set)
    fallback_handler: Fallback | None = None

    def command(
        self, name: str, *, summary: str, usages: list[tuple[str, str]] | None = None, read_only: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Register the handler for ``name``; ``usages`` are (what to type, what it does) for the help.

        ``read_only=True`` promises that the handler's reply depends only on its arguments, the
        request's time zone and local day, and the content: it reads no store, no user and no clock
        beyond the day. Such replies are cached (:class:`ReplyCache`). Sub-commands never are.
        """

        def register(fn: Handler) -> Handler:
            self.commands[name] = fn
            self.summaries[name] = summary
            self.usages[name] = usages or []
            if read_only:
                self.read_only.add(name)
            return fn

        return register

    def subcommand(
        self, command: str, word: str, *, usage: str, summary: str, read_only: bool = False,
        changes_state: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Register ``command word ...``; ``read_only`` as for :meth:`command` (cached per day);
        ``changes_state=True`` for sub-commands that write the store, which then run once per request
        however often the same request arrives (:func:`run_once`)."""

        def register(fn: Handler) -> Handler:
            self.subcommands.setdefault(command, {})[word] = Subcommand(fn, usage, summary, read_only, changes_state)
            return fn

        return register

    def fallback(self, fn: Fallback) -> Fallback:
        self.fallback_handler = fn
        return fn


router = Router()


def command_name(given: str) -> str:
    """A command as a platform hands it over (``/China-Filing``, ``filing``) -> ``/china-filing``;
    unknown names come back lower-cased with a slash, for the caller to refuse."""
    name = given.lstrip("/").casefold()
    return _WORDS.get(name, "/" + name)


def split_command(text: str) -> tuple[str | None, str, bool]:
    """``(command, args, explicit)`` for one line of text; command None means "not a command".

    ``explicit`` is False for bare words (``filing ...``) so that a question that merely starts with
    "platform" can still go to Q&A when it names no topic.
    """
    match = _LEAD.match(text)
    if not match:
        return None, text, False
    word = match["word"].casefold()
    command = _WORDS.get(word)
    if command is None:
        if match["slash"]:
            raise UsageError(msg("unknown_command", command="/" + echo(word, 30), commands=", ".join(COMMANDS)),
                             hint=msg("try_help"))
        return None, text, False
    explicit = bool(match["slash"]) or word.startswith("china-")
    return command, (match["rest"] or "").strip(), explicit


def looks_binary(text: str) -> bool:
    """Text that is mostly not text (NULs, control bytes, replacement characters)."""
    if "\x00" in text:
        return True
    sample = text[:2000]
    bad = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\t\n\r") or ch == "\ufffd")
    return bad > max(8, len(sample) // 10)


def read_language_flag(request: Request) -> Request:
    """The request without a ``--lang en|zh|auto`` flag, with that choice as its language (else as it came)."""
    found = _LANG_FLAG.search(request.text)
    if found is None:
        return request
    value = found["value"].casefold()
    if value not in LANGUAGE_CHOICES:
        raise UsageError(msg("bad_lang_flag", value=echo(found["value"], 20)))
    text = (request.text[: found.start()] + " " + request.text[found.end():]).strip()
    return request.model_copy(update={"text": text, "language": value})


CacheKey = tuple[str, str, str, dt.date, str]


class ReplyCache:
    """Replies of read-only commands, per (command, arguments, time zone, local day, answer language).

    Cards, menus and computed deadlines are pure functions of those and of the content, which is
    loaded once per process; the same command typed again the same day gets the same :class:`Reply`
    object (replies are frozen), so a surface can also render it once. A user mistake (an unknown
    topic and its "did you mean") is kept as the error to raise again: suggestions cost more than cards.
    Bounded (LRU), and arguments longer than :data:`MAX_KEY_CHARS` are never kept, so odd input
    cannot fill memory.
    """

    MAX_KEY_CHARS = 200

    def __init__(self, maxsize: int = 256) -> None:
        # ~14 KB a deadline reply: a few MB at most, and the menus and popular cards stay in.
        self._items: LRUCache[CacheKey, Reply | UserError] = LRUCache(maxsize)
        self._errors: LRUCache[tuple[str, str, tuple[str, ...], str], Reply] = LRUCache(128)
        self.hits = self.misses = 0

    async def get(self, key: CacheKey, compute: Callable[[], Awaitable[Reply]]) -> Reply:
        if len(key[1]) > self.MAX_KEY_CHARS:
            return await compute()
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            try:
                found = await compute()
            except UserError as exc:
                # Kept without its traceback: the frames it holds (request, desk, locals) would live as
                # long as the entry and, being cycles, leave only through the cyclic GC's full passes,
                # which stall every request in flight.
                found = exc.with_traceback(None)
                found.__context__ = None
            self._items[key] = found
        else:
            self.hits += 1
        if isinstance(found, UserError):
            raise copy.copy(found).with_traceback(None)  # a fresh exception each time: tracebacks never pile up
        return found

    def error_reply(self, exc: UserError, lang: str, build: Callable[[UserError], Reply]) -> Reply:
        """The friendly reply for a user mistake, built once per distinct message and language (typos repeat)."""
        key = (exc.message, exc.hint, tuple(exc.suggestions), lang)
        found = self._errors.get(key)
        if found is None:
            found = self._errors[key] = build(exc)
        return found


@dataclass
class Desk:
    """The services every handler may use: content, calendar, storage and the Q&A index."""

    library: Library
    calendar: ChinaCalendar = field(default_factory=china_calendar)
    store: Any = None  # bot.store.Store when running with storage; None for pure CLI lookups
    qa: Any = None  # handlers.qa.QAIndex, built once at start-up
    # handlers.qa.semantic.SemanticIndex: the optional re-ranker; None until first asked for, False when off
    semantic: Any = None
    middleware: list[Middleware] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    # Not an __init__ argument, so dataclasses.replace() (another library, calendar or store) starts empty.
    replies: ReplyCache = field(default_factory=ReplyCache, init=False, repr=False)

    def is_read_only(self, request: Request) -> bool:
        """Whether this command's reply depends only on its text, time zone, local day and the content.

        True for the help and for commands and sub-commands registered ``read_only`` (cards, menus,
        deadlines, upcoming events): the same request again the same day, in the same language, gets the
        same reply, so a surface may keep and repeat its rendering. Anything that reads or writes the
        store is False.
        """
        if request.mode != "command" or not request.command:
            return False
        command = command_name(request.command)
        if command not in router.commands:
            return False
        first = clean_input(request.text).partition(" ")[0].casefold()
        if first in HELP_WORDS:
            return True
        sub = router.subcommands.get(command, {}).get(first)
        return sub.read_only if sub is not None else command in router.read_only

    async def handle(self, request: Request) -> Reply:
        """Run one request through the middleware chain and the router."""

        async def innermost(req: Request) -> Reply:
            return await dispatch(req, self)

        call = innermost
        for mw in reversed([user_errors_to_replies, *self.middleware]):
            call = _bind(mw, self, call)
        return await call(request)


def _bind(mw: Middleware, desk: Desk, nxt: Callable[[Request], Awaitable[Reply]]):
    async def call(req: Request) -> Reply:
        return await mw(req, desk, nxt)

    return call


async def dispatch(request: Request, desk: Desk) -> Reply:
    text = clean_input(request.text)
    lang = request.answer_language()

    if request.mode == "watch":  # ambient channel messages are only ever questions
        return await _fallback(request.model_copy(update={"text": text}), desk)
    if not request.command and text.casefold() in ("", "help", "?"):  # empty, only an @mention, or "help"
        return await _cached_help(desk, None, lang)

    if request.command:
        command = command_name(request.command)
        args, explicit = text, True
        if command not in router.commands:
            raise UsageError(msg("unknown_command", command=echo(command, 30), commands=", ".join(COMMANDS)))
    else:
        found, args, explicit = split_command(text)
        if found is None:
            return await _fallback(request.model_copy(update={"text": text}), desk)
        command = found

    first, _, rest = args.partition(" ")
    sub = router.subcommands.get(command, {}).get(first.casefold())
    try:
        if first.casefold() in HELP_WORDS:
            return await _cached_help(desk, command, lang)
        if sub is not None:
            if sub.read_only:
                key = (command, args, request.timezone, request.today(), lang)
                return await desk.replies.get(key, lambda: sub.handler(request, desk, rest.strip()))
            if sub.changes_state:
                return await run_once(request, desk, lambda: sub.handler(request, desk, rest.strip()))
            return await sub.handler(request, desk, rest.strip())
        handler = router.commands[command]
        if command in router.read_only:
            key = (command, args, request.timezone, request.today(), lang)
            return await desk.replies.get(key, lambda: handler(request, desk, args))
        return await handler(request, desk, args)
    except UnknownTopicError:
        if explicit:
            raise
        # "platform for livestreaming?" typed in a chat is a question, not a command.
        return await _fallback(request.model_copy(update={"text": text}), desk)


REPLAY_WINDOW_SECONDS = 86400  # far beyond Slack's five-minute signature window and Teams' redeliveries


async def run_once(request: Request, desk: Desk, run: Callable[[], Awaitable[Reply]]) -> Reply:
    """Run a state-changing command once per ``request.idempotency_key``; the same request again gets the
    first answer back and changes nothing (a replayed signed request, a redelivery).

    The key is claimed in the store before running, so concurrent copies on several replicas run it
    once; the outcome is kept beside the claim: the reply, or the user mistake it was refused for (a
    replayed "cancel D1" stays refused even once a D1 exists). Only a crash gives the claim back.
    """
    store = desk.store
    if not request.idempotency_key or store is None:
        return await run()
    key = f"request:{request.platform}:{request.idempotency_key}"
    if not await store.claim_once(key, REPLAY_WINDOW_SECONDS, now=request.now):
        earlier = await store.claim_result(key)
        if earlier is None:
            raise UsageError(msg("request_in_progress"))
        log.info("replayed command answered from its first run", extra={"platform": request.platform})
        if "user_error" in earlier:
            mistake = earlier["user_error"]
            raise UsageError(Both(**mistake["message"]), hint=Both(**mistake["hint"]),
                             suggestions=mistake["suggestions"])
        return Reply.model_validate(earlier["reply"])
    try:
        reply = await run()
    except UserError as exc:
        (en, en_hint), (zh, zh_hint) = exc.render("en"), exc.render("zh")  # a replay may be shown in either
        await store.save_claim_result(key, {"user_error": {
            "message": {"en": en, "zh": zh}, "hint": {"en": en_hint, "zh": zh_hint}, "suggestions": exc.suggestions}})
        raise
    except BaseException:
        await store.forget_claim(key)
        raise
    await store.save_claim_result(key, {"reply": reply.model_dump(mode="json")})
    return reply


async def _fallback(request: Request, desk: Desk) -> Reply:
    if router.fallback_handler is None:
        raise UsageError(msg("no_fallback"))
    return await router.fallback_handler(request, desk)


async def _cached_help(desk: Desk, command: str | None, lang: Language) -> Reply:
    """The help never changes while the process runs: one Reply per command and language, whatever the day."""

    async def build() -> Reply:
        return help_reply(desk, command, lang=lang)

    return await desk.replies.get(("help", command or "", "", dt.date.min, lang), build)


def _translated(key: str, english: str, lang: Language) -> str:
    """A registered command's own English words, or their Chinese from content/strings.yaml."""
    return t(key, lang) if lang != "en" and has(key) else english


def help_reply(desk: Desk, command: str | None = None, *, lang: Language = "en") -> Reply:
    lines = []
    for name in COMMANDS:
        if name not in router.commands:
            continue
        usages = [(usage, _translated(f"usage:{usage}", what, lang)) for usage, what in router.usages[name]]
        usages.append((f"{name} help", t("help_this_help", lang)))
        usages += [(s.usage, _translated(f"usage:{s.usage}", s.summary, lang))
                   for s in router.subcommands.get(name, {}).values()]
        summary = _translated(f"cmd:{name}", router.summaries[name], lang)
        lines.append({"command": name, "summary": summary, "usages": usages})
    reply = Reply(kind="help", title=t("help_title", lang), text="", topic=None, language=lang)
    text = desk.library.render("help", lang=lang, commands=lines, focus=command)
    return reply.model_copy(update={"text": text})


def _error_reply(desk: Desk, exc: UserError, lang: Language) -> Reply:
    message, hint = exc.render(lang)
    reply = Reply(kind="error", title=t("error_title", lang), text="", suggestions=exc.suggestions, language=lang)
    return reply.model_copy(update={"text": desk.library.render("error", lang=lang, message=message, hint=hint)})


def check_input(request: Request) -> Request:
    """Refuse what is not a question or command (too long, binary) and read a ``--lang`` flag."""
    if len(request.text) > MAX_INPUT_CHARS:
        raise InputTooLargeError(msg("too_long", length=f"{len(request.text):,}", limit=f"{MAX_INPUT_CHARS:,}"))
    if looks_binary(request.text):
        raise InputTooLargeError(msg("binary"))
    return read_language_flag(request)


async def user_errors_to_replies(request: Request, desk: Desk, call_next) -> Reply:
    """The one place a user mistake (or our own failure) becomes a friendly reply, in the reply's language."""
    lang: Language = request.answer_language() if len(request.text) <= MAX_INPUT_CHARS else "en"
    try:
        request = check_input(request)
        lang = request.answer_language()
        return await call_next(request)
    except UserError as exc:
        return desk.replies.error_reply(exc, lang, lambda e: _error_reply(desk, e, lang))
    except Exception:
        log.exception("handler failed", extra={"platform": request.platform})
        reply = Reply(kind="error", title=t("internal_title", lang), text="", language=lang)
        text = desk.library.render(
            "error", lang=lang, message=t("internal_message", lang), hint=t("internal_hint", lang),
        )
        return reply.model_copy(update={"text": text})
