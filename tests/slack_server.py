"""A local Slack stand-in for tests: a Slack-compatible Web API on 127.0.0.1, and Slack's side of a request.

Nothing in the test suite can reach slack.com, so tests point the bot's Web API client at
:class:`FakeSlack` (``SLACK_API_URL`` / ``AsyncWebClient(base_url=...)``) and check what it recorded.
It speaks the real protocol (form or JSON bodies, ``Authorization: Bearer``, ``{"ok": ...}`` answers,
HTTP 429 with ``Retry-After``), so slack_sdk's client and retry handlers run unmodified.

Reusable by any suite (Slack adapter, reminders, scheduler)::

    from slack_server import FakeSlack, sign

    @pytest.fixture
    async def slack_api():
        async with FakeSlack() as api:
            yield api

    client = AsyncWebClient(token=api.bot_token, base_url=api.api_url)
    await client.chat_postMessage(channel="C1", text="hi")
    [call] = api.calls_to("chat.postMessage")
    api.fail("chat.postMessage", "not_in_channel")      # next call answers ok=false
    api.rate_limit("chat.postMessage", retry_after=0)    # next call answers 429
    api.unavailable("apps.connections.open", times=2)    # next two calls answer 503 (text/plain)
    api.fail_http("chat.postMessage", 500, body="upstream error", content_type="text/plain")  # a bare 5xx
    api.delay("chat.postMessage", 2.0)                   # the next call reaches "Slack" 2 s late
    release = api.hold("chat.update")                    # ...answered only once release.set() is called
    await api.wait_for("chat.postMessage", count=1)      # for work done after an HTTP ack

What it serves:

* ``POST`` (or ``GET``) ``/api/<method>``: ``auth.test``, ``chat.postMessage`` / ``postEphemeral`` / ``update`` /
  ``delete``, ``views.publish``, ``views.open``, ``oauth.v2.access``, ``apps.connections.open``,
  ``conversations.info``, ``users.info`` (with :meth:`FakeSlack.set_user`'s fields); any other method
  (``assistant.threads.setStatus``...) answers ``{"ok": true}`` and is recorded too, in order.
* Channel history: every accepted ``chat.postMessage`` (and :meth:`FakeSlack.add_message`) is kept per
  channel, and ``conversations.history`` serves it as Slack does: newest first, ``oldest`` / ``latest`` /
  ``inclusive``, ``limit`` and cursor pages, message metadata only with ``include_all_metadata``.
  :meth:`FakeSlack.limit_history` applies the limits Slack set on 2025-05-29 for commercially
  distributed apps outside the Marketplace (one call a minute, at most 15 messages a page).
  Message timestamps follow :attr:`FakeSlack.clock` when a test sets it (simulated time).
* ``users.conversations``: the channels a user is in, from :meth:`FakeSlack.set_members`.
* ``POST /response/<name>``: a ``response_url`` (slash commands and interactivity); see
  :meth:`FakeSlack.response_url`. Recorded with method ``"response_url"``.
* ``GET /socket``: a Socket Mode WebSocket; :meth:`FakeSlack.socket_send` pushes an envelope and
  returns the app's acknowledgement; :meth:`FakeSlack.wait_for_socket` waits for the app to connect.
  ``apps.connections.open`` answers ``invalid_auth`` with :meth:`FakeSlack.fail`, or 503 with
  :meth:`FakeSlack.unavailable`, like any other method.

The module also holds Slack's side of an inbound request: :func:`sign` (the ``X-Slack-Signature``
headers, computed with slack_sdk's own ``SignatureVerifier``) and :func:`load_fixture` for the example
payloads in ``tests/fixtures/slack/``.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web
from slack_sdk.signature import SignatureVerifier

FIXTURES = Path(__file__).parent / "fixtures" / "slack"


@dataclass
class ApiCall:
    """One recorded Web API call (or response_url post)."""

    method: str
    params: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)

    @property
    def blocks(self) -> list[dict]:
        blocks = self.params.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else blocks

    @property
    def view(self) -> dict:
        view = self.params.get("view") or {}
        return json.loads(view) if isinstance(view, str) else view

    def dumps(self) -> str:
        """Everything sent, as one string (for "never contains X" assertions)."""
        return json.dumps(self.params, ensure_ascii=False)


@dataclass
class _Rule:
    method: str
    times: int | None  # None: every call
    respond: Callable[[ApiCall], web.Response | Awaitable[web.Response]]
    when: Callable[[ApiCall], bool] = lambda call: True
    accept: bool = False  # Slack did the work (a message is posted) before answering with ``respond``


@dataclass
class HistoryLimits:
    """``conversations.history`` limits per token (Slack's for non-Marketplace commercial apps since 2025-05-29)."""

    per_minute: int = 1
    max_limit: int = 15
    calls: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Workspace:
    team_id: str = "T0001"
    team_name: str = "Acme Ltd"
    bot_user_id: str = "UBOT"
    bot_id: str = "BBOT"
    app_id: str = "A0001"


class FakeSlack:
    """A Slack-compatible Web API server on 127.0.0.1 that records every call."""

    def __init__(self, *, workspace: Workspace | None = None, bot_token: str = "xoxb-test-token") -> None:
        self.workspace = workspace or Workspace()
        self.bot_token = bot_token
        self.calls: list[ApiCall] = []
        self.tokens: dict[str, Workspace] = {bot_token: self.workspace}
        self.oauth_codes: dict[str, dict[str, Any]] = {}
        self._rules: list[_Rule] = []
        self._changed = asyncio.Condition()
        self._ts = 1_700_000_000.000100
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future] = {}
        self._socket_connected = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Channel history (oldest first) as conversations.history serves it; see add_message().
        self.history: dict[str, list[dict[str, Any]]] = {}
        # When set (seconds since the epoch), new message timestamps follow it: tests on simulated time.
        self.clock: Callable[[], float] | None = None
        self.history_limits: HistoryLimits | None = None
        self.members: dict[str, set[str]] = {}  # channel -> user ids, for users.conversations
        self.private_channels: set[str] = set()
        self.users: dict[str, dict[str, Any]] = {}  # user id -> fields users.info adds (is_admin...)

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # Slack takes GET too (slack_sdk's list helpers use it)
        app.router.add_post("/response/{name}", self._response_url)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What ``SLACK_API_URL`` / ``AsyncWebClient(base_url=...)`` should be (with the trailing slash)."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str | None = None) -> str:
        return f"{self.base_url}/response/{name or uuid.uuid4().hex[:12]}"

    # ------------------------------------------------------------------------- configuring

    def add_workspace(self, workspace: Workspace, token: str) -> None:
        """Make ``token`` a valid bot token of ``workspace`` (``auth.test`` answers for it)."""
        self.tokens[token] = workspace

    def add_oauth_code(self, code: str, workspace: Workspace, *, bot_token: str, scopes: str = "commands,chat:write",
                       installer: str = "UINSTALLER") -> None:
        """``oauth.v2.access`` with ``code`` returns a v2 bot installation of ``workspace``."""
        self.add_workspace(workspace, bot_token)
        self.oauth_codes[code] = {
            "ok": True, "app_id": workspace.app_id, "access_token": bot_token, "token_type": "bot",
            "scope": scopes, "bot_user_id": workspace.bot_user_id,
            "team": {"id": workspace.team_id, "name": workspace.team_name}, "enterprise": None,
            "is_enterprise_install": False, "authed_user": {"id": installer},
        }

    def fail(self, method: str, error: str, *, times: int | None = 1,
             when: Callable[[ApiCall], bool] = lambda call: True) -> None:
        """The next ``times`` calls of ``method`` (matching ``when``) answer ``{"ok": false, "error": error}``."""
        self._rules.append(_Rule(method, times, lambda call: web.json_response({"ok": False, "error": error}), when))

    def rate_limit(self, method: str, *, times: int | None = 1, retry_after: int = 0) -> None:
        """The next ``times`` calls of ``method`` (None: every call) answer HTTP 429 with ``Retry-After``."""
        self._rules.append(_Rule(
            method, times,
            lambda call: web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                           headers={"Retry-After": str(retry_after)}),
        ))

    def unavailable(self, method: str, *, times: int | None = 1, status: int = 503) -> None:
        """The next ``times`` calls of ``method`` answer HTTP ``status`` with a plain-text body, as a load
        balancer in front of Slack does when Slack is down."""
        self.fail_http(method, status, times=times, content_type="text/plain",
                       body="upstream connect error or disconnect/reset before headers")

    def fail_http(self, method: str, status: int, *, times: int | None = 1, body: str | None = None,
                  content_type: str = "application/json", accept: bool = False,
                  when: Callable[[ApiCall], bool] = lambda call: True) -> None:
        """The next ``times`` calls of ``method`` (None: every call) answer HTTP ``status`` (500, 503...).

        ``body`` defaults to Slack's JSON error shape; give ``content_type="text/plain"`` (or text/html) for
        the bare error pages a proxy or an outage returns. ``accept``: the message was posted anyway (the
        failure happened after Slack did the work), so a retry would repeat it.
        """
        text = body if body is not None else json.dumps({"ok": False, "error": f"http_{status}"})
        self._rules.append(_Rule(
            method, times, lambda call: web.Response(status=status, text=text, content_type=content_type), when,
            accept=accept,
        ))

    def delay(self, method: str, seconds: float, *, times: int | None = 1) -> None:
        """The next ``times`` calls of ``method`` reach Slack ``seconds`` late (a slow network or Slack):
        nothing is done until then, then the call is answered as usual. A client that gave up meanwhile
        does not know whether the call will still happen."""

        async def late(call: ApiCall) -> web.Response:
            await asyncio.sleep(seconds)
            return web.json_response(self._answer(call))

        self._rules.append(_Rule(method, times, late))

    def hold(self, method: str, *, times: int | None = 1) -> asyncio.Event:
        """The next ``times`` calls of ``method`` get no answer until the returned event is set (Slack is
        slow by as long as the test wants, without the test timing anything); then they are answered."""
        release = asyncio.Event()

        async def held(call: ApiCall) -> web.Response:
            await release.wait()
            return web.json_response(self._answer(call))

        self._rules.append(_Rule(method, times, held))
        return release

    def recover(self) -> None:
        """Forget every failure set up with fail/fail_http/rate_limit/delay: Slack is back."""
        self._rules.clear()

    def limit_history(self, *, per_minute: int = 1, max_limit: int = 15) -> HistoryLimits:
        """Apply Slack's ``conversations.history`` limits for non-Marketplace commercial apps (2025-05-29):
        ``per_minute`` calls per token by :attr:`clock` (HTTP 429 + ``Retry-After`` beyond), ``limit`` capped."""
        self.history_limits = HistoryLimits(per_minute=per_minute, max_limit=max_limit)
        return self.history_limits

    def add_message(self, channel: str, text: str = "hello", *, user: str = "UOTHER",
                    metadata: dict[str, Any] | None = None, ts: float | None = None) -> str:
        """Put a message in ``channel``'s history (someone else talking, by default); returns its ts."""
        stamp = self._next_ts() if ts is None else f"{ts:.6f}"
        message: dict[str, Any] = {"type": "message", "user": user, "text": text, "ts": stamp}
        if metadata is not None:
            message["metadata"] = metadata
        self.history.setdefault(channel, []).append(message)
        self.history[channel].sort(key=lambda m: float(m["ts"]))
        return stamp

    def set_members(self, channel: str, users: set[str] | list[str], *, private: bool = False) -> None:
        """Who is in ``channel`` (what ``users.conversations`` answers from)."""
        self.members[channel] = set(users)
        if private:
            self.private_channels.add(channel)

    def set_user(self, user: str, **fields: Any) -> None:
        """What ``users.info`` says of ``user`` besides its id (``is_admin=True``, ``is_owner=True``...)."""
        self.users[user] = fields

    # ------------------------------------------------------------------------------ reading

    def calls_to(self, *methods: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method in methods]

    def posts(self) -> list[ApiCall]:
        """Everything that put text in front of people."""
        return self.calls_to("chat.postMessage", "chat.postEphemeral", "chat.update", "views.publish", "response_url")

    async def wait_for(self, method: str, count: int = 1, within: float = 5.0) -> list[ApiCall]:
        """Wait until ``method`` was called at least ``count`` times (work done after an HTTP ack)."""

        def enough() -> bool:
            return len(self.calls_to(method)) >= count

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(enough), within)
            except TimeoutError:
                raise AssertionError(
                    f"expected {count} call(s) to {method} within {within}s, got {len(self.calls_to(method))}; "
                    f"calls: {[c.method for c in self.calls]}"
                ) from None
        return self.calls_to(method)

    # ------------------------------------------------------------------------------ serving

    async def _record(self, call: ApiCall) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def _next_ts(self) -> str:
        if self.clock is not None:  # simulated time; still strictly increasing, as Slack's are per channel
            self._ts = max(self.clock(), self._ts + 0.000001)
        else:
            self._ts += 1
        return f"{self._ts:.6f}"

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.method == "POST":
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else params.get("token")
        if auth.startswith("Basic "):  # oauth.v2.access sends the client credentials this way
            token = None
        call = ApiCall(method, params, token)
        await self._record(call)
        for rule in self._rules:
            if rule.method == method and rule.when(call) and (rule.times is None or rule.times > 0):
                if rule.times is not None:
                    rule.times -= 1
                if rule.accept:
                    self._answer(call)
                response = rule.respond(call)
                return await response if inspect.isawaitable(response) else response
        if method == "conversations.history":
            return self._history(call)
        return web.json_response(self._answer(call))

    def _history(self, call: ApiCall) -> web.Response:
        """``conversations.history``: newest first, bounded by oldest/latest, paged by limit and cursor."""
        if self.tokens.get(call.token or "") is None:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        p = call.params
        limits = self.history_limits
        limit = int(p.get("limit") or 100)
        if limits is not None:
            now = self.clock() if self.clock is not None else time.time()
            recent = [t for t in limits.calls.get(call.token or "", []) if t > now - 60]
            if len(recent) >= limits.per_minute:
                wait = math.ceil(recent[0] + 60 - now)
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": str(max(wait, 1))})
            limits.calls[call.token or ""] = [*recent, now]
            limit = min(limit, limits.max_limit)
        inclusive = str(p.get("inclusive", "")).lower() in ("1", "true")
        oldest, latest = float(p.get("oldest") or 0), float(p.get("latest") or math.inf)

        def inside(m: dict[str, Any]) -> bool:
            ts = float(m["ts"])
            return oldest <= ts <= latest if inclusive else oldest < ts < latest

        found = [m for m in reversed(self.history.get(str(p.get("channel")), [])) if inside(m)]
        start = int(p.get("cursor") or 0)
        page = found[start:start + limit]
        with_metadata = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(found)
        return web.json_response({"ok": True, "messages": messages, "has_more": more,
                                  "response_metadata": {"next_cursor": str(start + limit) if more else ""}})

    def _answer(self, call: ApiCall) -> dict[str, Any]:
        method, params = call.method, call.params
        if method == "oauth.v2.access":
            answer = self.oauth_codes.pop(str(params.get("code")), None)
            return answer or {"ok": False, "error": "invalid_code"}
        if method == "apps.connections.open":
            if not (call.token or "").startswith("xapp-"):
                return {"ok": False, "error": "not_allowed_token_type"}
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}
        ws = self.tokens.get(call.token or "")
        if ws is None:
            return {"ok": False, "error": "not_authed" if not call.token else "invalid_auth"}
        if method == "auth.test":
            return {
                "ok": True, "url": "https://acme.slack.com/", "team": ws.team_name, "user": "chinadesk",
                "team_id": ws.team_id, "user_id": ws.bot_user_id, "bot_id": ws.bot_id, "is_enterprise_install": False,
            }
        if method in ("chat.postMessage", "chat.update"):
            ts = params.get("ts") or self._next_ts()
            message = {"type": "message", "text": params.get("text", ""), "ts": ts, "bot_id": ws.bot_id}
            if method == "chat.postMessage":
                metadata = params.get("metadata")
                metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
                history = self.history.setdefault(str(params.get("channel")), [])
                history.append({**message, **({"metadata": metadata} if metadata else {})})
            return {"ok": True, "channel": params.get("channel"), "ts": ts, "message": message}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "views.publish":
            view = call.view
            return {"ok": True, "view": {"id": "V" + uuid.uuid4().hex[:8].upper(), "team_id": ws.team_id, **view}}
        if method == "conversations.info":
            return {"ok": True, "channel": {"id": params.get("channel"), "is_member": True}}
        if method == "users.info":
            user = {"id": params.get("user"), "tz": "Europe/London", "is_bot": False, "is_admin": False,
                    "is_owner": False, **self.users.get(str(params.get("user")), {})}
            return {"ok": True, "user": user}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V" + uuid.uuid4().hex[:8].upper(), "team_id": ws.team_id, **call.view}}
        if method == "users.conversations":
            types = str(params.get("types") or "public_channel").split(",")
            user = params.get("user") or ws.bot_user_id
            channels = [
                {"id": c, "is_private": c in self.private_channels} for c, users in sorted(self.members.items())
                if user in users and ("private_channel" if c in self.private_channels else "public_channel") in types
            ]
            return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}
        return {"ok": True}

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self._record(ApiCall("response_url", {"name": request.match_info["name"], **body}, None))
        return web.Response(text="ok")

    # --------------------------------------------------------------------------- socket mode

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}})
        self._socket_connected.set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                future = self._acks.get(data.get("envelope_id", ""))
                if future is not None and not future.done():
                    future.set_result(data)
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    async def wait_for_socket(self, within: float = 5.0) -> None:
        """Wait until the app has opened its Socket Mode connection."""
        await asyncio.wait_for(self._socket_connected.wait(), within)

    async def socket_send(self, kind: str, payload: dict[str, Any], *, within: float = 5.0,
                          retry_attempt: int = 0) -> dict[str, Any]:
        """Push one Socket Mode envelope (``events_api``, ``slash_commands``, ``interactive``); return the ack."""
        await asyncio.wait_for(self._socket_connected.wait(), within)
        envelope_id = uuid.uuid4().hex
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = future
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api"}
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason="timeout" if retry_attempt else "")
        await self._sockets[-1].send_json(envelope)
        return await asyncio.wait_for(future, within)


# ------------------------------------------------------------------------------ Slack's side


def sign(body: str, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``, signed with ``secret`` (v0 HMAC-SHA256)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def load_fixture(name: str) -> Any:
    """A payload from ``tests/fixtures/slack/<name>.json`` (a fresh copy each call)."""
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def form_body(fields: dict[str, Any]) -> str:
    """A slash command's ``application/x-www-form-urlencoded`` body."""
    return urlencode({k: v for k, v in fields.items() if v is not None})


def interactive_body(payload: dict[str, Any]) -> str:
    """An interactivity request's body: the JSON payload in a ``payload=`` form field."""
    return urlencode({"payload": json.dumps(payload)})


class SlackSender:
    """Slack's side of inbound requests: signed POSTs to ``/slack/events`` through an aiohttp test client.

    ``client`` is an ``aiohttp.test_utils.TestClient`` (or anything with ``post(path, data=, headers=)``).
    """

    def __init__(self, client: Any, secret: str, path: str = "/slack/events") -> None:
        self.client = client
        self.secret = secret
        self.path = path

    async def post(self, body: str, content_type: str, *, headers: dict[str, str] | None = None,
                   timestamp: int | None = None, secret: str | None = None) -> Any:
        all_headers = {"Content-Type": content_type, **sign(body, secret or self.secret, timestamp=timestamp)}
        all_headers.update(headers or {})
        return await self.client.post(self.path, data=body.encode(), headers=all_headers)

    async def command(self, fields: dict[str, Any], **kw: Any) -> Any:
        return await self.post(form_body(fields), "application/x-www-form-urlencoded", **kw)

    async def event(self, payload: dict[str, Any], *, retry_num: int | None = None, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", None) or {})
        if retry_num is not None:  # what Slack adds when it re-sends an event it thinks we missed
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"})
        return await self.post(json.dumps(payload), "application/json", headers=headers, **kw)

    async def action(self, payload: dict[str, Any], **kw: Any) -> Any:
        return await self.post(interactive_body(payload), "application/x-www-form-urlencoded", **kw)
