"""The Slack adapter: slack-bolt ``AsyncApp`` listeners that translate Slack payloads to and from the core.

Slack payload -> :class:`handlers.Request` (platform "slack", command, text, user, channel, workspace =
team id, timezone from the channel's settings, mode) -> ``await desk.handle(request)`` -> Block Kit
(:mod:`bot.slack.blockkit`). No advice logic lives here.

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
* Every request goes through bolt (one lane): a repeated read-only command is answered from the
  core's reply cache (``handlers.router.ReplyCache``) and its Block Kit rendered once per reply
  (:meth:`SlackAdapter.command_message`), never from kept JSON outside bolt.
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
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from cachetools import LRUCache
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SLACK_DEFAULT_API_URL, SlackSettings
from bot.observability import (
    slack_retry_handlers,
    web_api_failure,
)
from bot.slack.assistant import AgentDM
from bot.slack.blockkit import (
    SlackMessage,
    render_reply,
)
from bot.slack.feedback import reason_modal, render_feedback_summary
from bot.slack.installations import OAUTH_STATE_SECONDS, StoreInstallationStore, StoreOAuthStateStore
from bot.slack.listeners import ERROR_CONTEXT_KEY, SHAPE_ERRORS, register_listeners
from bot.slack.translate import PLATFORM, malformed_reason
from handlers.feedback import build_report
from handlers.prompts import starter_prompts
from handlers.request import Reply, Request
from handlers.router import Desk

log = logging.getLogger("chinadesk.slack")

EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
SIGNATURE_MAX_AGE = 300  # seconds: older signed requests are refused (replays), as bolt does

# Socket Mode: apps.connections.open errors that mean the app token itself is wrong (no retry helps),
# and the back-off for everything else (unreachable, timed out, 5xx).
APP_TOKEN_REJECTED = ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                      "not_allowed_token_type")
SOCKET_RETRY_MIN, SOCKET_RETRY_MAX = 1.0, 60.0  # seconds: 1, 2, 4... at most a minute
SOCKET_OPEN_SECONDS = 10.0  # apps.connections.open, and the WebSocket handshake after it
SOCKET_CLOSE_SECONDS = 2.0



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


# --------------------------------------------------------------------------------------- adapter

HOME_MEMBERSHIP_UNKNOWN = (
    "Showing only the ones you set: I could not check which channels you are in (a workspace admin can "
    "reinstall China Desk to grant it channels:read and groups:read)."
)


REVIEW_DAYS = 30  # how far back the App Home's review summary looks


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
        self.agent = AgentDM([])  # the prompts come from the packs, at attach()
        self.bolt = self._build_app()
        register_listeners(self.bolt, self)

    # ---- lifecycle

    def attach(self, desk: Desk, store: Any) -> None:
        """Give the adapter the core and the store (built at start-up, after the bolt app)."""
        self.desk, self.store = desk, store
        self.agent.prompts = starter_prompts(desk.library)

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
        try:
            bolt_request = AsyncBoltRequest(body=raw.decode("utf-8"), query=request.query_string,
                                            headers=request.headers)  # type: ignore[arg-type]
            malformed = malformed_reason(bolt_request.body)
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

    def _refuse(self, request: web.Request, raw: bytes, reason: str) -> web.Response:
        if not self._signed(request, raw):
            return web.json_response({"error": "invalid request"}, status=401)
        log.warning("malformed Slack request refused", extra={"reason": reason, "bytes": len(raw)})
        return web.json_response({"error": "malformed request"}, status=400)

    def _signed(self, request: web.Request, raw: bytes) -> bool:
        """For a body bolt cannot parse (bolt checks signatures only after parsing): is it Slack's? Slack's v0
        signature over the raw bytes, within five minutes. By hand rather than slack_sdk's
        ``SignatureVerifier``, which decodes the body as UTF-8 first and raises on a timestamp that is not a
        number: this must never raise, whatever the bytes and headers."""
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

    # ---- feedback that teaches

    async def ask_reason(self, client: AsyncWebClient, body: dict[str, Any], channel: str | None,
                         message_ts: str) -> bool:
        """Open the "what was wrong?" modal for a 👎; False when Slack would not (the caller thanks instead)."""
        trigger = body.get("trigger_id")
        if not isinstance(trigger, str) or not trigger:
            return False
        try:
            await client.views_open(trigger_id=trigger, view=reason_modal(channel, message_ts))
            return True
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:  # expired trigger, outage...
            log.info("feedback reason modal not opened", extra={"error": web_api_failure(exc).error})
            return False

    async def review_summary(self, client: AsyncWebClient, team: str | None, viewer: str) -> list[dict[str, Any]]:
        """The App Home's review blocks for a workspace admin or owner (``users.info``); none for others,
        or when Slack cannot say (an install without ``users:read``). Only this workspace's feedback."""
        if self.desk is None or not hasattr(self._store(), "list_unanswered"):
            return []
        try:
            found = await client.users_info(user=viewer)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("App Home: could not tell whether the viewer is an admin",
                     extra={"error": web_api_failure(exc).error})
            return []
        user = found.get("user") or {}
        if not (user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner")):
            return []
        since = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=REVIEW_DAYS)
        store = self._store()
        votes = await store.list_feedback(PLATFORM, workspace=team, since=since)
        questions = await store.list_unanswered(PLATFORM, workspace=team, since=since)
        report = build_report(votes, questions, library=self.desk.library, since=since, examples=2)
        return render_feedback_summary(report, REVIEW_DAYS)

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


def _authorization_url(api_url: str) -> str | None:
    """Slack's authorize page lives beside its API; follow SLACK_API_URL for local demos."""
    if api_url == SLACK_DEFAULT_API_URL:
        return None  # bolt's default, https://slack.com/oauth/v2/authorize
    base = api_url.rstrip("/")
    base = base[: -len("/api")] if base.endswith("/api") else base
    return f"{base}/oauth/v2/authorize"


def setup_slack(
    app: web.Application, settings: SlackSettings, *, default_timezone: str = "Asia/Shanghai",
) -> SlackAdapter:
    """Add Slack's routes to the aiohttp application; the caller attaches desk/store at start-up."""
    adapter = SlackAdapter(settings, default_timezone=default_timezone)
    adapter.add_routes(app)
    return adapter
