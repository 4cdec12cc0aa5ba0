"""The Slack adapter: slack-bolt ``AsyncApp`` listeners that translate Slack payloads to and from the core.

Slack payload -> :class:`handlers.Request` (platform "slack", command, text, user, channel, workspace =
team id, timezone from the channel's settings, mode) -> ``await desk.handle(request)`` -> Block Kit
(:mod:`bot.render.blockkit`). No advice logic lives here.

How the 3-second rule, retries and duplicates are handled
--------------------------------------------------------
Slack wants every request acknowledged within 3 seconds and re-sends events that were not (with
``X-Slack-Retry-Num``), and may deliver the same event id twice anyway. So:

* The app runs with ``process_before_response=True``: each listener runs *before* the HTTP response,
  but listeners only do quick work inline. Events are acknowledged as soon as the listener has
  handed the real work (answering, posting) to :meth:`SlackAdapter.spawn`, a tracked asyncio task.
  Tracking means shutdown can finish in-flight answers and tests can ``await adapter.drain()``
  instead of sleeping. (Bolt's default, ``False``, runs listeners in untracked futures.)
* Slash commands compute the reply inline (the core answers in milliseconds) and ``ack()`` *with* the
  card. If the core has not answered within :data:`ACK_BUDGET_SECONDS`, they ``ack()`` empty and
  post the card through ``response_url`` when it is ready.
* :class:`EventGate` (global middleware) claims ``slack:event:<event_id>`` in the store before any
  listener runs: the retry, or a second delivery of the same event id, is acknowledged and dropped.
  The claim is in the database, so it holds across processes and restarts.
* A slash command the core declares read-only (a card, a menu, a deadline: ``Desk.is_read_only``)
  keeps its answer in :class:`CommandReplay`; the same signed command again, from the same workspace
  and channel time zone on the same day, is answered from there without running bolt and the core
  again (bolt's own per-request work costs more than the answer; see ``bench/RESULTS.md``).
* An answer is also claimed per message (``slack:answer:<channel>:<ts>``), because one message can
  arrive as two different events (``app_mention`` and ``message.channels`` in a watched channel).

Bolt's built-in middleware checks every HTTP request's signature and timestamp (older than 5
minutes: 401) and drops the bot's own events; :class:`EventGate` also drops other bots'
messages, so two bots can never talk to each other forever.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from cachetools import LRUCache, TTLCache
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SLACK_DEFAULT_API_URL, SlackSettings
from bot.observability import (  # noqa: F401  (CountingRateLimitHandler re-exported)
    CountingRateLimitHandler,
    command_label,
    record_request,
    slack_retry_handlers,
    web_api_failure,
)
from bot.render.blockkit import (
    ACTION_COMMAND,
    ACTION_FEEDBACK_DOWN,
    ACTION_FEEDBACK_UP,
    ACTION_SHARE,
    FeedbackRef,
    HomeCommand,
    SlackMessage,
    render_home,
    render_notice,
    render_reply,
)
from handlers.request import Reply, Request
from handlers.router import COMMANDS, Desk, router

log = logging.getLogger("chinadesk.slack")

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
ACK_BUDGET_SECONDS = 2.0  # Slack allows 3 s; keep a second for the network
EVENT_CLAIM_TTL = 86400  # Slack retries within minutes; a day leaves room for slow redeliveries
OAUTH_STATE_SECONDS = 600
SIGNATURE_MAX_AGE = 300  # seconds: older signed requests are refused (replays), as bolt does
ERROR_CONTEXT_KEY = "chinadesk_error"  # where record_bolt_error leaves what bolt caught
SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError)  # a payload not shaped like Slack's

# The one list of what this adapter handles. Registration below iterates these, and
# tests/test_slack_manifest.py checks slack/manifest.yml against them in both directions.
HANDLED_COMMANDS: tuple[str, ...] = COMMANDS
HANDLED_EVENTS: tuple[str, ...] = ("app_mention", "message", "app_home_opened", "app_uninstalled", "tokens_revoked")
# Manifest bot event subscriptions that arrive as the "message" event type.
MESSAGE_SUBSCRIPTIONS: tuple[str, ...] = ("message.im", "message.channels", "message.groups")
HANDLED_ACTIONS: tuple[str, ...] = (ACTION_SHARE, ACTION_COMMAND, ACTION_FEEDBACK_UP, ACTION_FEEDBACK_DOWN)

# Socket Mode: apps.connections.open errors that mean the app token itself is wrong (no retry helps),
# and the back-off for everything else (unreachable, timed out, 5xx).
APP_TOKEN_REJECTED = ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                      "not_allowed_token_type")
SOCKET_RETRY_MIN, SOCKET_RETRY_MAX = 1.0, 60.0  # seconds: 1, 2, 4... at most a minute
SOCKET_OPEN_SECONDS = 10.0  # apps.connections.open, and the WebSocket handshake after it
SOCKET_CLOSE_SECONDS = 2.0

# Message subtypes that are still a person writing something (everything else: edits, joins, bots...).
_HUMAN_SUBTYPES = (None, "thread_broadcast", "file_share")
_NOT_IN_CHANNEL = ("not_in_channel", "channel_not_found", "is_archived")


# ------------------------------------------------------------------------------------ translating


_ANGLE = re.compile(r"<([^<>]*)>")
_SPECIAL = ("channel", "here", "everyone")


def slack_to_plain(text: str, bot_user_id: str | None = None) -> str:
    """Slack message markup -> the plain text a person typed.

    Mentions of the bot are dropped; ``<@U1>`` becomes ``@U1``; ``<!channel>`` becomes the words
    ``@channel`` (plain text never pings; the renderer escapes it again anyway); links become their
    label or URL; Slack's ``&amp; &lt; &gt;`` are decoded (the core escapes what it echoes back).
    """

    def plain(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            return "" if bot_user_id and target[1:] == bot_user_id else "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            name = target[1:].split("^", 1)[0]
            if name in _SPECIAL:
                return "@" + name
            return label or "@" + name
        return label or target

    text = _ANGLE.sub(plain, text or "")
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())


# A message that tags a person or a group (<@U1>, <!here>, <!subteam^S1>) is addressed to them.
_ADDRESSED = re.compile(r"<[@!][^<>]*>")


def conversation_key(event: dict[str, Any]) -> str:
    """The conversation a message belongs to, for follow-ups: a DM as a whole, otherwise the thread
    (its root message's ts; a top-level message starts its own)."""
    channel = event.get("channel") or ""
    if event.get("channel_type") == "im":
        return channel
    return f"{channel}:{event.get('thread_ts') or event.get('ts')}"


def workspace_key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False) -> str:
    """The store's ``workspace`` for a Slack install: the team, or the org for org-wide installs."""
    if is_enterprise_install and enterprise_id:
        return enterprise_id
    return team_id or enterprise_id or "unknown"


def _team_of(body: dict[str, Any]) -> str | None:
    """The workspace a payload comes from (events, commands and interactivity spell it differently)."""
    team = body.get("team")
    return (
        body.get("team_id")
        or (team.get("id") if isinstance(team, dict) else None)
        or (body.get("user") or {}).get("team_id")
        or body.get("enterprise_id")
    )


# ---------------------------------------------------------------------------------- installations


class StoreInstallationStore(AsyncInstallationStore):
    """bolt's installation store interface on the project's database (``Store.save_installation``...).

    One row per workspace: the latest bot installation (we ask for no user scopes).
    """

    def __init__(self, store_ref: Callable[[], Any]) -> None:
        self._store_ref = store_ref  # the store is opened at start-up, after the bolt app is built
        self._logger = logging.getLogger("chinadesk.slack.installations")

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    @property
    def store(self) -> Any:
        return self._store_ref()

    async def async_save(self, installation: Installation) -> None:
        key = workspace_key(installation.enterprise_id, installation.team_id, installation.is_enterprise_install)
        await self.store.save_installation(PLATFORM, key, {"installation": dict(installation.__dict__)})

    async def async_save_bot(self, bot: Bot) -> None:
        key = workspace_key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        data = await self.store.find_installation(PLATFORM, key) or {}
        data["bot"] = dict(bot.__dict__)
        await self.store.save_installation(PLATFORM, key, data)

    async def _find(self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> dict:
        key = workspace_key(enterprise_id, team_id, is_enterprise_install)
        return await self.store.find_installation(PLATFORM, key) or {}

    async def async_find_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        data = await self._find(enterprise_id, team_id, is_enterprise_install)
        if "installation" not in data:
            return None
        installation = Installation(**data["installation"])
        if "bot" in data:  # a refreshed bot token (token rotation) saved after the installation
            bot = Bot(**data["bot"])
            installation.bot_token, installation.bot_refresh_token = bot.bot_token, bot.bot_refresh_token
            installation.bot_token_expires_at = bot.bot_token_expires_at
        return installation

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        data = await self._find(enterprise_id, team_id, is_enterprise_install)
        if "bot" in data:
            return Bot(**data["bot"])
        if "installation" in data:
            return Installation(**data["installation"]).to_bot()
        return None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.store.delete_installation(PLATFORM, workspace_key(enterprise_id, team_id, False))

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None,
    ) -> None:
        await self.store.delete_installation(PLATFORM, workspace_key(enterprise_id, team_id, False))


class StoreOAuthStateStore(AsyncOAuthStateStore):
    """OAuth ``state`` values in the database, so that any replica can finish an install another began."""

    def __init__(self, store_ref: Callable[[], Any], expiration_seconds: int = OAUTH_STATE_SECONDS) -> None:
        self._store_ref = store_ref
        self.expiration_seconds = expiration_seconds
        self._logger = logging.getLogger("chinadesk.slack.oauth")

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.expiration_seconds)
        await self._store_ref().issue_oauth_state(state, expires)
        return state

    async def async_consume(self, state: str) -> bool:
        return await self._store_ref().consume_oauth_state(state, dt.datetime.now(dt.UTC))


# ------------------------------------------------------------------------------------ Web API client


class _OneLine(logging.Filter):
    """slack_sdk's Socket Mode client logs a full traceback for every failed (re)connection: one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} ({type(record.exc_info[1]).__name__})"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


_socket_log = logging.getLogger("chinadesk.slack.socket_mode")
_socket_log.addFilter(_OneLine())


def _api_error(exc: SlackApiError) -> str | None:
    """Slack's ``error`` code in a failed call (None when the body was not Slack's JSON)."""
    data = getattr(exc.response, "data", None)
    return data.get("error") if isinstance(data, dict) else None


def _retry_after(exc: SlackApiError) -> float | None:
    try:
        return float(exc.response.headers.get("Retry-After"))
    except (AttributeError, TypeError, ValueError):
        return None



def web_client(settings: SlackSettings, token: str | None = None) -> AsyncWebClient:
    """The Web API client: ``SLACK_API_URL`` base; 429 + Retry-After, 5xx, timeouts and connection errors
    retried (and counted: :func:`bot.observability.slack_retry_handlers`, shared with the scheduler's
    client). An answer is posted once, after the event was claimed, so a passing failure must not lose it."""
    handlers = slack_retry_handlers(rate_limit_retries=3, connection_retries=2, server_error_retries=2)
    return AsyncWebClient(token=token, base_url=settings.api_url, retry_handlers=handlers, timeout=10)


# ------------------------------------------------------------------------------ repeated commands


ReplayKey = tuple[str, str, str, str, dt.date, str]
_KEY_FIELDS = re.compile(rb"(?:^|&)(team_id|enterprise_id|is_enterprise_install|command|text|channel_id)=([^&]*)")


@dataclass(frozen=True)
class ReplayedAnswer:
    body: bytes  # the JSON bolt sent the first time
    kind: str  # the Reply's kind, for the metrics


class CommandReplay:
    """Slash-command answers that may be sent again as they are, without running bolt and the core.

    Slack slash commands are very repetitive (the menus, the same filing cards, the same deadline
    asked by several people), and bolt's per-request work (body parsing into a context, a Web API
    client per request, keyword-argument injection for middleware and listeners) costs more than the
    core's answer. So when a command is one the core declares read-only (``Desk.is_read_only``: its
    reply depends only on the command, its text, the channel's time zone and the local day), the
    answer bolt sent is kept here under (workspace, command, text, time zone, day, language setting). The same signed
    request again is answered from here after the same checks bolt makes first: Slack's v0
    signature and the five-minute timestamp window (slack_sdk's ``SignatureVerifier``, which bolt
    uses too).

    * Only requests bolt has already answered for that workspace are replayed: the first one in each
      workspace goes through bolt's authorisation (the installation lookup in OAuth mode).
    * Entries live for :data:`TTL_SECONDS` (and never past the local day, which is in the key), and
      an uninstall forgets the workspace's entries at once in this process.
    * Everything else (events, buttons, sub-commands that read or write the store, unsigned or
      malformed requests) goes to bolt unchanged.
    """

    TTL_SECONDS = 300.0
    MAX_TEXT_CHARS = 200  # longer command texts are never kept (odd input cannot fill memory)

    def __init__(
        self, signing_secret: str, *, maxsize: int = 1024, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._answers: TTLCache[ReplayKey, ReplayedAnswer] = TTLCache(maxsize, self.TTL_SECONDS, timer=clock)
        self.hits = 0

    @staticmethod
    def key(
        team: str | None, command: str | None, text: str, timezone: str, day: dt.date, language: str = "auto",
    ) -> ReplayKey | None:
        if not team or not command or len(text) > CommandReplay.MAX_TEXT_CHARS:
            return None
        return (team, command, text, timezone, day, language)

    def remember(self, key: ReplayKey | None, message: dict[str, Any], kind: str) -> None:
        if key is not None:
            self._answers[key] = ReplayedAnswer(json.dumps(message).encode(), kind)

    def form(self, headers: Any, raw: bytes) -> dict[str, str] | None:
        """The fields of a slash-command form body that make the key (None: not a slash command, or nothing
        is kept). Only those fields are decoded, the first of each as Slack and bolt read them: this runs
        before every slash command that bolt then answers, so it has to cost next to nothing."""
        if not self._answers or b"command=" not in raw:
            return None
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return None
        fields: dict[str, str] = {}
        try:
            for name, value in _KEY_FIELDS.findall(raw):
                fields.setdefault(name.decode(), unquote_plus(value.decode("utf-8"), errors="strict"))
        except UnicodeDecodeError:
            return None
        return fields

    def signed(self, headers: Any, raw: bytes) -> bool:
        """Slack's v0 signature over the raw body, timestamp within five minutes (as bolt checks it). False,
        never an exception, for a timestamp that is not a plain number (slack_sdk would raise on it)."""
        timestamp = headers.get("X-Slack-Request-Timestamp") or ""
        if not (timestamp.isascii() and timestamp.isdigit()):
            return False
        return self._verifier.is_valid(raw, timestamp, headers.get("X-Slack-Signature"))

    def find(self, key: ReplayKey | None) -> ReplayedAnswer | None:
        return self._answers.get(key) if key is not None else None

    def forget(self, team: str) -> None:
        for key in [k for k in list(self._answers.keys()) if k[0] == team]:
            self._answers.pop(key, None)


# --------------------------------------------------------------------------------------- adapter

HOME_MEMBERSHIP_UNKNOWN = (
    "Showing only the ones you set: I could not check which channels you are in (a workspace admin can "
    "reinstall China Desk to grant it channels:read and groups:read)."
)


@dataclass(frozen=True)
class HomeItems:
    """What one viewer's App Home lists."""

    tracked: list[Any]
    subscriptions: list[Any]
    paused: list[Any]
    notice: str | None = None


class SlackAdapter:
    """One bolt ``AsyncApp`` with China Desk's listeners, plus the background work it started."""

    def __init__(self, settings: SlackSettings, *, default_timezone: str = "Asia/Shanghai") -> None:
        self.settings = settings
        self.default_timezone = default_timezone
        self.desk: Desk | None = None
        self.store: Any = None
        self._tasks: set[asyncio.Task] = set()
        self._socket_handler: Any = None
        self._socket_task: asyncio.Task | None = None
        self._command_messages: LRUCache[int, tuple[Reply, dict[str, Any]]] = LRUCache(64)
        self.replay: CommandReplay | None = (
            CommandReplay(settings.signing_secret.get_secret_value()) if settings.signing_secret else None
        )
        self.bolt = self._build_app()
        register_listeners(self.bolt, self)

    # ---- lifecycle

    def attach(self, desk: Desk, store: Any) -> None:
        """Give the adapter the core and the store (built at start-up, after the bolt app)."""
        self.desk, self.store = desk, store

    def _store(self) -> Any:
        if self.store is None:
            raise RuntimeError("the Slack adapter has no store yet (start-up has not run)")
        return self.store

    def _build_app(self) -> AsyncApp:
        s = self.settings
        common: dict[str, Any] = {
            "name": "chinadesk",
            "signing_secret": s.signing_secret.get_secret_value() if s.signing_secret else "",
            "process_before_response": True,  # see the module docstring: work is spawned, not done inline
            "request_verification_enabled": True,
            "logger": logging.getLogger("chinadesk.slack.bolt"),
        }
        if s.bot_token is not None:  # one workspace
            client = web_client(s, s.bot_token.get_secret_value())
            return AsyncApp(client=client, **common)
        oauth = AsyncOAuthSettings(
            client_id=s.client_id,
            client_secret=s.client_secret.get_secret_value() if s.client_secret else None,
            scopes=list(s.scopes),
            redirect_uri=s.redirect_uri,
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
            installation_store=StoreInstallationStore(self._store),
            installation_store_bot_only=True,
            state_store=StoreOAuthStateStore(self._store),
            state_expiration_seconds=OAUTH_STATE_SECONDS,
            authorization_url=_authorization_url(s.api_url),
            logger=logging.getLogger("chinadesk.slack.oauth"),
        )
        return AsyncApp(client=web_client(s), oauth_settings=oauth, installation_store_bot_only=True, **common)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task:
        """Run work after the acknowledgement, tracked so that shutdown and tests can wait for it."""
        task = asyncio.create_task(self._guard(coro, name), name=f"slack:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _guard(coro: Awaitable[Any], name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Slack background work failed", extra={"work": name})

    async def drain(self, within: float = 10.0) -> None:
        """Wait (up to ``within`` seconds) for every spawned task, including tasks spawned while waiting."""
        deadline = asyncio.get_running_loop().time() + within
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=remaining)

    async def close(self, grace: float = 5.0) -> None:
        """Stop Socket Mode, let in-flight answers finish (briefly), cancel the rest."""
        if self._socket_task is not None:
            self._socket_task.cancel()
            await asyncio.gather(self._socket_task, return_exceptions=True)
            self._socket_task = None
        if self._socket_handler is not None:
            handler, self._socket_handler = self._socket_handler, None
            try:  # a WebSocket close waits for Slack's answer (10 s in aiohttp): not during a shutdown
                await asyncio.wait_for(handler.close_async(), SOCKET_CLOSE_SECONDS)
            except Exception as exc:  # timed out, or a half-open connection that fails to close
                log.info("Socket Mode connection dropped without a clean close", extra={"error": type(exc).__name__})
        await self.drain(grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def start_socket_mode(self, on_rejected: Callable[[str], None]) -> None:
        """Connect to Slack over a WebSocket (no public URL needed), in the background: returns at once,
        so that the HTTP port (health, Teams) serves whether or not Slack can be reached.

        A rejected app token calls ``on_rejected`` with a message naming ``SLACK_APP_TOKEN`` (the server
        then exits with status 2); anything else is retried with capped back-off, one log line each time.
        """
        self._socket_task = asyncio.create_task(self._connect_socket(on_rejected), name="slack:socket-mode")

    async def _connect_socket(self, on_rejected: Callable[[str], None]) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        assert self.settings.app_token is not None  # checked by SlackSettings.from_env
        token = self.settings.app_token.get_secret_value()
        # apps.connections.open without slack_sdk's own retries (and their log lines): retried below.
        opener = AsyncWebClient(base_url=self.settings.api_url, timeout=SOCKET_OPEN_SECONDS, retry_handlers=[])
        self._socket_handler = handler = AsyncSocketModeHandler(
            self.bolt, app_token=token, web_client=opener, logger=_socket_log,
        )
        failures = 0
        while True:
            wait: float | None = None
            try:
                opened = await opener.apps_connections_open(app_token=token)
                handler.client.wss_uri = opened["url"]
                # slack_sdk retries a failing WebSocket connect for ever: bound it, and start over.
                await asyncio.wait_for(handler.connect_async(), SOCKET_OPEN_SECONDS)
            except SlackApiError as exc:
                error = _api_error(exc)
                if error in APP_TOKEN_REJECTED:
                    message = (f"SLACK_APP_TOKEN was rejected by Slack ({error}): use the app-level token (xapp-...) "
                               "with connections:write from Basic Information > App-Level Tokens")
                    log.error(message)
                    on_rejected(message)
                    return
                reason = error or f"HTTP {getattr(exc.response, 'status_code', '?')}"
                if error == "ratelimited":
                    wait = _retry_after(exc)
            except Exception as exc:  # unreachable, refused, timed out, a body that is not Slack's...
                reason = f"{type(exc).__name__}: {exc}"[:160] if str(exc) else type(exc).__name__
            else:
                log.info("Slack Socket Mode connected", extra={"after_failures": failures})
                return  # slack_sdk keeps the connection from here (pings, reconnects)
            failures += 1
            wait = wait if wait is not None else min(SOCKET_RETRY_MAX, SOCKET_RETRY_MIN * 2 ** (failures - 1))
            log.warning("Slack Socket Mode: cannot connect (%s); retrying in %.0f s", reason, wait,
                        extra={"attempt": failures})
            await asyncio.sleep(wait)

    # ---- aiohttp endpoints

    async def handle_events(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: commands, events and interactivity on one URL (bolt dispatches).

        bolt parses the body before it checks the signature, and assumes Slack's shapes: a body that is
        not UTF-8, not JSON, a JSON array, ``payload=`` that is not an object, an ``event`` that is not
        an object... would raise, i.e. a 500 for anyone who can reach the URL. Such bodies are answered
        401 when their signature is not valid (the same answer bolt gives any unsigned request) and 400
        when it is, without ever reaching a listener.
        """
        raw = await request.read()
        if self.replay is not None:
            replayed = self._replay(request, raw)
            if replayed is not None:
                return replayed
        try:
            bolt_request = AsyncBoltRequest(body=raw.decode("utf-8"), query=request.query_string,
                                            headers=request.headers)  # type: ignore[arg-type]
            malformed = _malformed(bolt_request.body)
        except (UnicodeDecodeError, ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
            malformed = "unreadable body"  # (RecursionError: JSON nested deeper than the parser goes)
        if malformed:
            return self._refuse(request, raw, malformed)
        try:
            bolt_response: BoltResponse = await self.bolt.async_dispatch(bolt_request)
        except Exception as exc:  # a shape bolt's internals did not expect: refuse it, never a 500
            return self._refuse(request, raw, f"dispatch failed: {type(exc).__name__}")
        error = bolt_request.context.get(ERROR_CONTEXT_KEY)
        if bolt_response.status >= 500 and isinstance(error, SHAPE_ERRORS):
            # bolt caught it (its listener matching indexes payloads freely: a block action without
            # an action_id...). A database or network failure keeps its 500, so that Slack retries.
            return self._refuse(request, raw, f"payload shape: {type(error).__name__}")
        return await to_aiohttp_response(bolt_response)

    def _replay(self, request: web.Request, raw: bytes) -> web.Response | None:
        """The kept answer to a repeated read-only slash command (:class:`CommandReplay`), or None.

        Never waits on anything: the channel's time zone and language must be in this process's settings
        cache (:mod:`bot.channel_cache`, 5 s), otherwise bolt answers and refreshes it.
        """
        assert self.replay is not None
        started = time.perf_counter()
        form = self.replay.form(request.headers, raw)
        if form is None or not self.replay.signed(request.headers, raw):
            return None  # bolt answers it (401 when unsigned)
        cached = self.cached_settings(form.get("channel_id"))
        if cached is None:
            return None
        timezone, language = cached
        text = slack_to_plain(form.get("text", ""))
        key = CommandReplay.key(_team_of(form), form.get("command"), text, timezone,
                                dt.datetime.now(ZoneInfo(timezone)).date(), language)
        found = self.replay.find(key)
        if found is None:
            return None  # bolt answers it
        self.replay.hits += 1
        command = Request(text=text, command=form.get("command"), platform=PLATFORM)
        record_request(PLATFORM, command_label(command), found.kind, "command", len(text),
                       time.perf_counter() - started, replayed=True)
        return web.Response(body=found.body, content_type="application/json", charset="utf-8")

    def _refuse(self, request: web.Request, raw: bytes, reason: str) -> web.Response:
        if not self._signed(request, raw):
            return web.json_response({"error": "invalid request"}, status=401)
        log.warning("malformed Slack request refused", extra={"reason": reason, "bytes": len(raw)})
        return web.json_response({"error": "malformed request"}, status=400)

    def _signed(self, request: web.Request, raw: bytes) -> bool:
        """Slack's v0 signature over the raw bytes, within five minutes (never raises, whatever the headers)."""
        secret = self.settings.signing_secret
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if secret is None or not timestamp.isascii() or not timestamp.isdigit() or not signature.isascii():
            return False
        if abs(time.time() - int(timestamp)) > SIGNATURE_MAX_AGE:
            return False
        base = b"v0:" + timestamp.encode() + b":" + raw
        expected = "v0=" + hmac.new(secret.get_secret_value().encode(), base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode())

    async def handle_install(self, request: web.Request) -> web.Response:
        assert self.bolt.oauth_flow is not None
        return await to_aiohttp_response(await self.bolt.oauth_flow.handle_installation(await to_bolt_request(request)))

    async def handle_oauth_redirect(self, request: web.Request) -> web.Response:
        assert self.bolt.oauth_flow is not None
        return await to_aiohttp_response(await self.bolt.oauth_flow.handle_callback(await to_bolt_request(request)))

    def add_routes(self, app: web.Application) -> None:
        if self.settings.signing_secret is not None or not self.settings.socket_mode:
            app.router.add_post(EVENTS_PATH, self.handle_events)
        if self.bolt.oauth_flow is not None:
            app.router.add_get(INSTALL_PATH, self.handle_install)
            app.router.add_get(REDIRECT_PATH, self.handle_oauth_redirect)

    # ---- translating in

    async def channel_settings(self, channel: str | None) -> tuple[str, str]:
        """The channel's (or DM's) time zone and language choice, or the defaults."""
        if channel and self.store is not None:
            try:
                found = await self.store.get_channel_settings(PLATFORM, channel)
                return found.timezone or self.default_timezone, getattr(found, "language", None) or "auto"
            except Exception:  # a settings lookup must never cost an answer
                log.exception("channel settings lookup failed")
        return self.default_timezone, "auto"

    def cached_settings(self, channel: str | None) -> tuple[str, str] | None:
        """The channel's time zone and language if this process has its settings fresh in memory, else None."""
        peek = getattr(self.store, "cached_channel_settings", None)
        settings = peek(PLATFORM, channel) if channel and peek is not None else None
        if settings is None:
            return None
        return settings.timezone or self.default_timezone, getattr(settings, "language", None) or "auto"

    async def ask(self, request: Request) -> Reply:
        if self.desk is None:
            raise RuntimeError("the Slack adapter has no desk yet (start-up has not run)")
        return await self.desk.handle(request)

    async def request(
        self, *, text: str, mode: str, user: str | None, channel: str | None, team: str | None,
        command: str | None = None, thread: str | None = None, thread_opener: bool = False,
        body: dict[str, Any] | None = None,
    ) -> Request:
        """``body``: the Slack payload a command came in; its hash identifies the request, so a replay of
        the same signed request changes nothing twice (``trigger_id`` and ``response_url`` make each real
        invocation's body unique)."""
        key = None
        if body is not None:
            canonical = json.dumps(body, sort_keys=True, ensure_ascii=True, default=str).encode()
            key = hashlib.sha256(canonical).hexdigest()
        timezone, language = await self.channel_settings(channel)
        return Request(
            text=text, command=command, platform=PLATFORM, mode=mode, user=user, channel=channel, workspace=team,
            timezone=timezone, language=language if language in ("auto", "en", "zh") else "auto",
            thread=thread, thread_opener=thread_opener, idempotency_key=key,
        )

    # ---- the App Home

    async def home_items(self, client: AsyncWebClient, team: str | None, viewer: str) -> HomeItems:
        """The workspace's deadlines, subscriptions and paused items that ``viewer`` may see: those of the
        channels they are in, and those they set themselves. A private channel's never reach a non-member.

        Membership comes from ``users.conversations`` (scopes ``channels:read``, ``groups:read``): public
        channels the viewer joined, private ones the bot shares with them. When Slack cannot say (an
        install from before those scopes, an outage), only the viewer's own are shown, with a note.
        """
        store = self._store()
        tracked = await store.list_tracked(PLATFORM, workspace=team)
        subscriptions = await store.list_subscriptions(PLATFORM, workspace=team)
        paused = await store.list_paused(PLATFORM, team)
        channels: set[str] = set()
        notice = None
        try:
            cursor = None
            for _page in range(20):
                resp = await client.users_conversations(user=viewer, types="public_channel,private_channel",
                                                        exclude_archived=True, limit=999, cursor=cursor)
                channels.update(c["id"] for c in resp.get("channels") or [] if isinstance(c, dict) and "id" in c)
                cursor = (resp.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("App Home: could not list the viewer's channels", extra={"error": web_api_failure(exc).error})
            notice = HOME_MEMBERSHIP_UNKNOWN

        def visible(channel: str, created_by: str | None) -> bool:
            return channel in channels or created_by == viewer

        tracked = [d for d in tracked if visible(d.channel, d.created_by)]
        subscriptions = [s for s in subscriptions if visible(s.channel, s.created_by)]
        shown = {("deadline", d.id) for d in tracked} | {("subscription", s.id) for s in subscriptions}
        return HomeItems(tracked, subscriptions, [p for p in paused if (p.kind, p.id) in shown], notice)

    # ---- translating out

    def command_message(self, reply: Reply) -> dict[str, Any]:
        """A slash command's answer as ``ack``/``respond`` arguments, rendered once per Reply object.

        Read-only commands come back from the core's ``ReplyCache`` as the very same (frozen) Reply, so
        its Block Kit is kept beside it; holding the Reply in the entry keeps its ``id`` from being reused.
        """
        found = self._command_messages.get(id(reply))
        if found is not None and found[0] is reply:
            return found[1]
        message = render_reply(reply, share=reply.ephemeral)
        out = {**message.as_kwargs(), "response_type": "ephemeral" if reply.ephemeral else "in_channel"}
        self._command_messages[id(reply)] = (reply, out)
        return out

    async def post(self, client: AsyncWebClient, channel: str, message: SlackMessage, **extra: Any) -> dict:
        # parse="none" and link_names=False: plain "@channel" text in an answer is never turned into a ping.
        response = await client.chat_postMessage(
            channel=channel, text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False,
            parse="none", link_names=False, **extra,
        )
        return response.data if isinstance(response.data, dict) else {}


def _malformed(body: Any) -> str | None:
    """Why a parsed Slack body cannot be one of Slack's payloads (None: it can)."""
    if not isinstance(body, dict):
        return "body is not an object"
    for key in ("event", "team", "user", "channel", "container", "authorizations"):
        value = body.get(key)
        if value is not None and not isinstance(value, dict | str | list):
            return f"{key} has the wrong type"
    event = body.get("event")
    if event is not None and not isinstance(event, dict):
        return "event is not an object"
    actions = body.get("actions")
    if actions is not None and (not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions)):
        return "actions is not a list of objects"
    if isinstance(event, dict):
        wrong = _not_text(event, _EVENT_TEXT_FIELDS)
        if wrong:
            return f"event.{wrong} is not a string"
        if event.get("type") == "app_home_opened" and not event.get("user"):
            return "app_home_opened without a user"
    for action in actions or []:
        wrong = _not_text(action, ("action_id", "value"))
        if wrong:
            return f"action {wrong} is not a string"
        if action.get("action_id") == ACTION_SHARE and not _channel_of(body):
            return "share without a channel"
    return None


# The fields of an event the listeners read as text: a list or an object there is not Slack's.
_EVENT_TEXT_FIELDS = ("type", "subtype", "user", "channel", "channel_type", "text", "ts", "thread_ts", "tab")


def _not_text(payload: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    """The first of ``fields`` that ``payload`` has with a value other than a string."""
    return next((k for k in fields if payload.get(k) is not None and not isinstance(payload[k], str)), None)


def _channel_of(body: dict[str, Any]) -> str | None:
    """The conversation an interaction happened in (``channel.id``, else the container's)."""
    channel, container = body.get("channel"), body.get("container")
    found = (channel.get("id") if isinstance(channel, dict) else None) or (
        container.get("channel_id") if isinstance(container, dict) else None)
    return found if isinstance(found, str) and found else None


_ESCAPED_SURROGATE = re.compile(r"(?:\\|%5[cC])u[dD][89a-fA-F]")  # \ud800 in JSON, %5Cud800 in a form
_SURROGATE = re.compile("[\ud800-\udfff]")


def strip_lone_surrogates(body: Any) -> None:
    """Remove, in place, lone UTF-16 surrogates from every string in a parsed payload.

    JSON may carry ``\\ud800`` without its pair; Python decodes it to a string no UTF-8 encoder accepts,
    which would fail (or be echoed) when the answer is sent. Iterative: payloads can be deeply nested.
    """
    stack = [body]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in list(items):
            if isinstance(value, str):
                if _SURROGATE.search(value):
                    node[key] = _SURROGATE.sub("", value)
            elif isinstance(value, dict | list):
                stack.append(value)


def _authorization_url(api_url: str) -> str | None:
    """Slack's authorize page lives beside its API; follow SLACK_API_URL for local demos."""
    if api_url == SLACK_DEFAULT_API_URL:
        return None  # bolt's default, https://slack.com/oauth/v2/authorize
    base = api_url.rstrip("/")
    base = base[: -len("/api")] if base.endswith("/api") else base
    return f"{base}/oauth/v2/authorize"


# -------------------------------------------------------------------------------------- middleware


async def record_bolt_error(error: Exception, request: Any) -> None:
    """bolt's error handler: keep what failed for :meth:`SlackAdapter.handle_events` to judge (4xx or 5xx)."""
    if isinstance(error, SHAPE_ERRORS):
        log.warning("Slack payload bolt could not process", extra={"error": type(error).__name__})
    else:
        log.error("Slack request failed", exc_info=error)
    if request is not None:
        request.context[ERROR_CONTEXT_KEY] = error


class EventGate(AsyncMiddleware):
    """bolt middleware in front of every listener: no answers to bots, and one answer per event id.

    * Messages and mentions written by any bot are acknowledged and dropped (bolt already drops our
      own): two bots can never talk to each other forever.
    * Each ``event_id`` is claimed in the store (``slack:event:<id>``) before a listener runs, so
      Slack's retries (``X-Slack-Retry-Num``) and second deliveries are acknowledged and dropped; the
      claim is in the database, so it holds across replicas and restarts.
    * Lone surrogates (``\\ud800`` without its pair) are stripped from the payload before anyone reads it.

    A class rather than a ``@app.middleware`` function: bolt builds injected keyword arguments for
    function middleware on every request, and slash commands, which this gate always lets through,
    should not pay for that.
    """

    def __init__(self, adapter: SlackAdapter) -> None:
        self.adapter = adapter

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse:
        body = req.body
        if req.mode != "http":  # Socket Mode: the shape checks handle_events makes for HTTP requests
            malformed = _malformed(body)
            if malformed:
                log.warning("malformed Slack payload dropped", extra={"reason": malformed})
                return BoltResponse(status=200, body="")  # acknowledged: a redelivery would be just as wrong
        if req.mode != "http" or _ESCAPED_SURROGATE.search(req.raw_body):  # (Socket Mode keeps no raw body)
            strip_lone_surrogates(body)
        if body.get("type") != "event_callback":
            return await next()
        event = body.get("event") or {}
        if event.get("type") in ("message", "app_mention") and (
            event.get("bot_id") or event.get("subtype") == "bot_message" or event.get("bot_profile")
        ):
            return BoltResponse(status=200, body="")
        event_id = body.get("event_id")
        if event_id and not await self.adapter._store().claim_once(f"slack:event:{event_id}", EVENT_CLAIM_TTL):
            log.info("duplicate Slack event ignored", extra={"event_id": event_id})
            return BoltResponse(status=200, body="")
        return await next()


# --------------------------------------------------------------------------------------- listeners


def _home_commands() -> list[HomeCommand]:
    out = []
    for name in COMMANDS:
        if name not in router.commands:
            continue
        usages = [(f"{name} help", "every command")]
        usages += [(s.usage, s.summary) for s in router.subcommands.get(name, {}).values()]
        out.append(HomeCommand(command=name, summary=router.summaries[name], usages=usages))
    return out


def _feedback_for(reply: Reply, question: str) -> FeedbackRef | None:
    """Answers and cards get 👍/👎; menus, help and error messages do not."""
    if reply.kind in ("menu", "help", "error"):
        return None
    return FeedbackRef(topic=reply.topic, question=question)


def register_listeners(app: AsyncApp, adapter: SlackAdapter) -> None:
    """Every Slack entry point, in one place (commands, events, actions) plus the cross-cutting middleware."""
    app.use(EventGate(adapter))
    app.error(record_bolt_error)

    # ---- slash commands

    async def on_command(ack: Any, body: dict, respond: Any) -> None:
        async def answer() -> tuple[Request, Reply]:
            request = await adapter.request(
                text=slack_to_plain(body.get("text", "")), command=body.get("command"), mode="command",
                user=body.get("user_id"), channel=body.get("channel_id"), team=_team_of(body), body=body,
            )
            return request, await adapter.ask(request)

        work = asyncio.ensure_future(answer())  # the settings lookup too is inside the 3-second budget
        await asyncio.sleep(0)  # one loop turn: a cached or pure answer is ready after it, no timer needed
        try:
            request, reply = (
                work.result() if work.done() else await asyncio.wait_for(asyncio.shield(work), ACK_BUDGET_SECONDS)
            )
        except TimeoutError:
            # Slow answer: acknowledge now (Slack's 3 s), deliver through response_url when ready.
            await ack()

            async def later() -> None:
                await respond(**adapter.command_message((await work)[1]), replace_original=False)

            adapter.spawn(later(), name="slow-command")
            return
        message = adapter.command_message(reply)
        if adapter.replay is not None and adapter.desk is not None and adapter.desk.is_read_only(request):
            key = CommandReplay.key(request.workspace, request.command, request.text, request.timezone,
                                    request.today(), request.language)
            adapter.replay.remember(key, message, reply.kind)
        await ack(**message)

    for command in HANDLED_COMMANDS:
        app.command(command)(on_command)

    # ---- channel Q&A: mentions, DMs, watched channels

    async def answer_message(event: dict, context: Any, client: AsyncWebClient, mode: str) -> None:
        channel, ts = event.get("channel"), event.get("ts")
        if not channel or not ts:
            return
        question = slack_to_plain(event.get("text", ""), context.bot_user_id)
        if mode == "watch" and not question:
            return
        request = await adapter.request(
            text=question or "/china-filing help", mode=mode, user=event.get("user"), channel=channel,
            team=context.team_id or _team_of(event), thread=conversation_key(event),
            thread_opener=event.get("thread_ts") in (None, ts),
        )
        reply = await adapter.ask(request)
        if mode == "watch" and reply.kind not in ("answer", "deadline"):
            return  # ambient messages get an answer only when the Q&A handler is confident
        # One answer per message, even when it arrived as two events (mention + watched channel).
        if not await adapter._store().claim_once(f"slack:answer:{channel}:{ts}", EVENT_CLAIM_TTL):
            return
        message = render_reply(reply, share=False, feedback=_feedback_for(reply, question))
        try:
            await adapter.post(client, channel, message, thread_ts=event.get("thread_ts") or ts)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:  # still failing after the retries
            log.warning("could not answer in channel", extra={"error": web_api_failure(exc).error})

    async def follows_up_the_bot(event: dict, context: Any) -> bool:
        """A reply in a thread that began with a question to the bot (and that the bot answered) may be a
        follow-up without mentioning it; the Q&A handler then applies the watched-channel bar. A reply
        that tags someone else is people talking to each other, and is left alone."""
        thread_ts = event.get("thread_ts")
        if not thread_ts or thread_ts == event.get("ts") or _ADDRESSED.search(event.get("text") or ""):
            return False
        store = adapter._store()
        if not hasattr(store, "load_qa_context"):
            return False
        found = await store.load_qa_context(PLATFORM, conversation_key(event), dt.datetime.now(dt.UTC))
        return bool(found and found.get("opened_by_question"))

    async def on_mention(event: dict, context: Any, client: AsyncWebClient) -> None:
        adapter.spawn(answer_message(event, context, client, "mention"), name="mention")

    async def on_message(event: dict, context: Any, client: AsyncWebClient) -> None:
        if event.get("subtype") not in _HUMAN_SUBTYPES or event.get("bot_id"):
            return
        channel_type = event.get("channel_type")
        if channel_type == "im":
            adapter.spawn(answer_message(event, context, client, "direct"), name="direct")
            return
        if channel_type not in ("channel", "group"):
            return  # group DMs: only when mentioned (app_mention)
        if context.bot_user_id and f"<@{context.bot_user_id}" in (event.get("text") or ""):
            return  # app_mention answers this one

        async def watch() -> None:
            if await follows_up_the_bot(event, context):
                await answer_message(event, context, client, "watch")
                return
            channel_settings = await adapter._store().get_channel_settings(PLATFORM, event.get("channel"))
            if channel_settings.watch:
                await answer_message(event, context, client, "watch")

        adapter.spawn(watch(), name="watch")

    app.event("app_mention")(on_mention)
    app.event("message")(on_message)

    # ---- App Home

    async def on_home_opened(event: dict, context: Any, client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return

        async def publish() -> None:
            team = context.team_id
            desk = adapter.desk

            def title(topic: str) -> str:
                found = desk.library.topics.get(topic) if desk is not None else None
                return found.title if found is not None else topic

            items = await adapter.home_items(client, team, event["user"])
            view = render_home(
                commands=_home_commands(),
                tracked=items.tracked,
                subscriptions=items.subscriptions,
                paused=items.paused,
                notice=items.notice,
                topic_title=title,
                today=dt.datetime.now(ZoneInfo(adapter.default_timezone)).date(),
            )
            await client.views_publish(user_id=event["user"], view=view)

        adapter.spawn(publish(), name="home")

    app.event("app_home_opened")(on_home_opened)

    # ---- uninstall: forget the workspace

    async def forget(team: str) -> None:
        if adapter.replay is not None:
            adapter.replay.forget(team)
        await adapter._store().delete_workspace(PLATFORM, team)
        log.info("Slack workspace data deleted", extra={"workspace": team})

    async def on_uninstalled(body: dict) -> None:
        team = workspace_key(body.get("enterprise_id"), body.get("team_id"), body.get("is_enterprise_install"))
        await forget(team)

    async def on_tokens_revoked(body: dict, event: dict) -> None:
        if not (event.get("tokens") or {}).get("bot"):
            return  # only user tokens revoked: we hold none
        team = workspace_key(body.get("enterprise_id"), body.get("team_id"), body.get("is_enterprise_install"))
        await forget(team)

    app.event("app_uninstalled")(on_uninstalled)
    app.event("tokens_revoked")(on_tokens_revoked)

    # ---- buttons

    async def on_share(ack: Any, body: dict, action: dict, client: AsyncWebClient, respond: Any) -> None:
        await ack()
        user = (body.get("user") or {}).get("id")
        channel = _channel_of(body)

        async def share() -> None:
            request = await adapter.request(
                text=action.get("value", ""), mode="command", user=user, channel=channel, team=_team_of(body),
            )
            reply = await adapter.ask(request)
            message = render_reply(reply, share=False, shared_by=user)
            try:
                await adapter.post(client, channel, message)
            except SlackApiError as exc:
                if web_api_failure(exc).error not in _NOT_IN_CHANNEL:
                    raise
                await respond(
                    **render_notice(
                        "I can't post in this conversation because I'm not a member. Invite me with "
                        "`/invite @China Desk` (or mention me once), then press *Share to channel* again."
                    ).as_kwargs(),
                    response_type="ephemeral", replace_original=False,
                )

        adapter.spawn(share(), name="share")

    async def on_command_button(ack: Any, body: dict, action: dict, respond: Any) -> None:
        await ack()
        channel = (body.get("channel") or {}).get("id")

        async def run() -> None:
            request = await adapter.request(
                text=action.get("value", ""), mode="command", user=(body.get("user") or {}).get("id"),
                channel=channel, team=_team_of(body), body=body,
            )
            reply = await adapter.ask(request)
            await respond(**render_reply(reply, share=reply.ephemeral).as_kwargs(), response_type="ephemeral",
                          replace_original=False)

        adapter.spawn(run(), name="command-button")

    async def on_feedback(ack: Any, body: dict, action: dict, respond: Any) -> None:
        await ack()
        from bot.store import Feedback

        vote = "up" if action.get("action_id") == ACTION_FEEDBACK_UP else "down"
        ref = FeedbackRef.parse(action.get("value", ""))
        user = (body.get("user") or {}).get("id")
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        message_ts = container.get("message_ts") or (body.get("message") or {}).get("ts")

        async def record() -> None:
            store = adapter._store()
            if not await store.claim_once(f"slack:feedback:{channel}:{message_ts}:{user}", 365 * 86400):
                text = "You already rated this answer; thanks."
            else:
                await store.record_feedback(Feedback(
                    platform=PLATFORM, workspace=_team_of(body), channel=channel, user=user,
                    message_ref=f"{channel}:{message_ts}" if message_ts else None, topic=ref.topic, vote=vote,
                    question=ref.question or None,
                ))
                text = "Thanks for the feedback: it helps us improve the answers."
            await respond(text=text, response_type="ephemeral", replace_original=False)

        adapter.spawn(record(), name="feedback")

    app.action(ACTION_SHARE)(on_share)
    app.action(re.compile(rf"^{ACTION_COMMAND}(:\d+)?$"))(on_command_button)
    app.action(ACTION_FEEDBACK_UP)(on_feedback)
    app.action(ACTION_FEEDBACK_DOWN)(on_feedback)


def setup_slack(
    app: web.Application, settings: SlackSettings, *, default_timezone: str = "Asia/Shanghai",
) -> SlackAdapter:
    """Add Slack's routes to the aiohttp application; the caller attaches desk/store at start-up."""
    adapter = SlackAdapter(settings, default_timezone=default_timezone)
    adapter.add_routes(app)
    return adapter
