"""The local chat page: try China Desk in a browser, with no Slack or Teams and no credentials.

``GET /`` serves a page (``templates/chat.html``, plain JavaScript in ``static/chat.js``, no build step,
nothing from a CDN); what is typed there goes to ``POST /chat/api`` and runs through the same core as a
chat message (:meth:`handlers.Desk.handle`); the :class:`~handlers.request.Reply` comes back as JSON
(:mod:`bot.web.view`) that the page lays out as a card: sources, caveats, related-command buttons that run
their command. Each browser session is a conversation (``Request.thread``), so follow-ups use the Q&A
conversation context like a Slack thread; "New conversation" starts another.

It is an unauthenticated endpoint, so (see :func:`check_request`):

* **Where.** On only where ``WEB_CHAT`` says (``bot.config``: by default only on a loopback address).
  The ``Host`` header must be a loopback name or an IP address unless ``WEB_CHAT=on`` chose to serve it
  more widely: a DNS-rebinding page (``evil.example`` resolved to 127.0.0.1) is refused.
* **Same origin only.** A POST must come from this page: an ``Origin`` (when sent) equal to this host,
  ``Sec-Fetch-Site`` (when sent) ``same-origin``, ``Content-Type: application/json`` (a cross-site form
  cannot send it without a CORS preflight, which is never granted) and an ``X-Chat-Token`` header equal
  to the session cookie (``SameSite=Strict``, ``HttpOnly``; the page gets the token in a ``<meta>``):
  the double-submit pattern, which needs no server secret and works on every replica.
* **Bad input** (too long, not UTF-8, binary, not JSON) gets a friendly 400 and changes nothing.
* **No markup from content or users**: the template is autoescaped, the script sets ``textContent``
  only, and a Content-Security-Policy allows scripts and styles from this origin alone.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from aiohttp import web

from bot.web.view import reply_view
from handlers.request import MAX_INPUT_CHARS, Request, clean_input
from handlers.router import looks_binary

log = logging.getLogger("chinadesk.web")

COOKIE = "chinadesk_chat"
TOKEN_HEADER = "X-Chat-Token"
MAX_BODY = 32 * 1024  # bytes: a 4,000-character question in UTF-8 and JSON escapes fits well within
PLATFORM = "web"
_CONVERSATION = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}
API_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
STATIC = {"chat.js": "text/javascript", "chat.css": "text/css"}

# What the page offers to try first: one of each kind of thing it answers.
EXAMPLES = (
    "/china-filing",
    "/china-filing facial-recognition from 2025-09-20",
    "What documents does the algorithm filing need?",
    "/china-platform xiaohongshu",
    "/china-filing upcoming 60",
    "/china-filing help",
)


class Refused(Exception):
    """A request the chat API will not run: ``status`` and a message a person can act on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class WebChat:
    """The chat page's setup: the core it asks, and how widely it may be reached."""

    desk: Any  # handlers.Desk (with the app's store: conversation contexts live there)
    default_timezone: str = "Asia/Shanghai"
    any_host: bool = False  # WEB_CHAT=on: served under any Host name, not only loopback names and IPs


WEB_CHAT_KEY: web.AppKey[WebChat] = web.AppKey("chinadesk.web_chat", WebChat)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot.web", "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
    )


def setup_web_chat(app: web.Application, desk: Any, *, default_timezone: str = "Asia/Shanghai",
                   any_host: bool = False) -> WebChat:
    """Add ``GET /``, ``GET /chat/static/{name}``, ``GET /favicon.ico`` and ``POST /chat/api`` to ``app``."""
    chat = WebChat(desk=desk, default_timezone=default_timezone, any_host=any_host)
    app[WEB_CHAT_KEY] = chat
    page = _environment().get_template("chat.html")
    files = {name: (resources.files("bot.web") / "static" / name).read_bytes() for name in STATIC}

    async def index(request: web.Request) -> web.Response:
        host_allowed(request, chat)
        session = request.cookies.get(COOKIE, "")
        fresh = not _valid_session(session)
        if fresh:
            session = secrets.token_urlsafe(32)
        body = page.render(token=session, examples=EXAMPLES, max_chars=MAX_INPUT_CHARS)
        response = web.Response(text=body, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)
        if fresh:
            # A browser-session cookie: no Max-Age, so closing the browser ends the conversation too.
            response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/", secure=request.secure)
        return response

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        return web.Response(body=files[name], content_type=STATIC[name], charset="utf-8", headers=headers)

    async def api(request: web.Request) -> web.Response:
        try:
            host_allowed(request, chat)
            session = check_request(request)
            data = await read_json(request)
            core_request = to_request(data, session, chat)
        except Refused as refused:
            return web.json_response({"error": refused.message}, status=refused.status, headers=API_HEADERS)
        reply = await chat.desk.handle(core_request)
        return web.json_response({"reply": reply_view(reply)}, headers=API_HEADERS,
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def favicon(_request: web.Request) -> web.Response:
        return web.Response(status=204)  # no icon; answering saves every browser a logged 404

    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/chat/static/{name}", static)
    app.router.add_post("/chat/api", api)
    return chat


# ------------------------------------------------------------------------------------------ the checks


def _valid_session(value: str) -> bool:
    return 32 <= len(value) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", value) is not None


def _hostname(host: str) -> str:
    """``Host`` without its port: ``127.0.0.1:8080`` -> ``127.0.0.1``, ``[::1]:8080`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_local_host(host: str) -> bool:
    """A ``Host`` a DNS-rebinding page cannot have: a loopback name, or an IP address (not a DNS name)."""
    name = _hostname(host)
    if name in _LOOPBACK_NAMES:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(request: web.Request, chat: WebChat) -> None:
    if not chat.any_host and not is_local_host(request.host or ""):
        # Not a Refused: the page is simply not here under that name.
        raise web.HTTPNotFound()


def check_request(request: web.Request) -> str:
    """The session of a same-origin POST from the chat page, or :class:`Refused` (see the module docstring)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") != f"{request.scheme}://{request.host}":
        raise Refused(403, "This chat only answers its own page. Open it at this server's address.")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused(403, "This chat only answers its own page. Open it at this server's address.")
    if request.content_type != "application/json":
        raise Refused(400, "Send the message as JSON (Content-Type: application/json), as the chat page does.")
    session = request.cookies.get(COOKIE, "")
    token = request.headers.get(TOKEN_HEADER, "")
    if not _valid_session(session) or not hmac.compare_digest(session.encode(), token.encode()):
        raise Refused(403, "Your chat session has expired. Reload the page and ask again.")
    return session


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, read up to :data:`MAX_BODY` bytes whatever Content-Length says."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refused(400, too_long())
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise Refused(400, too_long())
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refused(400, "That message was not text I can read (it was not UTF-8).") from None
    except ValueError:
        raise Refused(400, "That message did not arrive in one piece; please send it again.") from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise Refused(400, "Type a command or a question first.")
    return data


def too_long() -> str:
    return f"That message is too long: I read up to {MAX_INPUT_CHARS:,} characters. Ask a shorter question."


def to_request(data: dict[str, Any], session: str, chat: WebChat) -> Request:
    """The core's view of a chat message: a direct message (or a command) in this browser's conversation."""
    raw = data["text"]
    if len(raw) > MAX_INPUT_CHARS:
        raise Refused(400, too_long())
    if looks_binary(raw):
        raise Refused(400, "That looks like binary data rather than text. Type a command or a question.")
    text = clean_input(raw)
    if not text:
        raise Refused(400, "Type a command or a question first.")
    conversation = data.get("conversation")
    if not isinstance(conversation, str) or not _CONVERSATION.match(conversation):
        conversation = "main"
    timezone = data.get("timezone")
    if not isinstance(timezone, str) or not _known_zone(timezone):
        timezone = chat.default_timezone
    # The thread key is a hash: the session cookie itself never reaches the store or the logs.
    thread = hashlib.sha256(f"{session}:{conversation}".encode()).hexdigest()[:32]
    return Request(
        text=text, platform=PLATFORM, mode="command" if text.startswith("/") else "direct",
        user=f"web:{thread[:12]}", timezone=timezone, thread=f"web:{thread}",
        thread_opener=data.get("opener") is True,
    )


def _known_zone(name: str) -> bool:
    if len(name) > 64 or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", name):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
