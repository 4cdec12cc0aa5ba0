"""Metrics (Prometheus) and structured logs, shared by every surface.

Metrics are defined once here so that names stay consistent; the core's Desk middleware counts every
request by platform/command/outcome, the HTTP middleware times every endpoint, and the scheduler and
Web API clients count their own events. Logs carry a request id (from ``X-Request-Id`` or generated)
and never a secret or a user's message at info level: we log its length and the command only.

Wiring (see :mod:`bot.app`): :func:`http_middleware` is the aiohttp app's middleware,
:func:`metrics_middleware` is in every Desk's middleware list, ``GET /metrics`` is
:func:`metrics_endpoint`; the scheduler reports each pass through :func:`count_reminder_pass`; every
Slack Web API client gets its retry handlers from :func:`slack_retry_handlers`, which count retries.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import ClientOSError, ServerConnectionError, ServerDisconnectedError, web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from handlers.request import Reply, Request, UserError
from handlers.router import COMMANDS, split_command

disable_created_metrics()  # no ``*_created`` series: half the scrape size, nothing a dashboard needs

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter(
    "chinadesk_requests_total", "Requests answered by the core", ["platform", "command", "outcome"]
)
REQUEST_SECONDS = Histogram(
    "chinadesk_request_seconds", "Time the core took to answer", ["platform", "command"], buckets=_LATENCY_BUCKETS
)
# result: answered | abstained; mode: mention | direct | watch (ambient messages in watched channels) | command
QA_RESULTS = Counter("chinadesk_qa_total", "Channel Q&A outcomes", ["result", "mode"])
HTTP_REQUESTS = Counter("chinadesk_http_requests_total", "HTTP requests", ["route", "status"])
HTTP_SECONDS = Histogram("chinadesk_http_request_seconds", "HTTP latency", ["route"], buckets=_LATENCY_BUCKETS)
REMINDERS = Counter("chinadesk_reminders_total", "Reminder posts by what happened", ["event"])  # due posted late failed
WEB_API_RETRIES = Counter("chinadesk_web_api_retries_total", "Retried platform API calls", ["platform", "reason"])
READY = Gauge("chinadesk_ready", "1 when content is loaded and the database answers")

REMINDER_EVENTS = ("due", "posted", "late", "retried", "paused", "failed", "expired", "skipped")
# Series that exist from start-up (at 0), so that dashboards and rate() see them before the first event.
for _event in REMINDER_EVENTS:
    REMINDERS.labels(_event)
for _result in ("answered", "abstained"):
    for _mode in ("mention", "direct", "watch"):
        QA_RESULTS.labels(_result, _mode)
for _reason in ("rate_limited", "connection_error", "server_error"):
    WEB_API_RETRIES.labels("slack", _reason)


_KNOWN_COMMANDS = frozenset(COMMANDS)
_requests_log = logging.getLogger("chinadesk.requests")


def command_label(request: Request) -> str:
    """A low-cardinality label for a request: one of the slash commands, ``qa`` for questions,
    ``unknown`` for anything else (so that arbitrary input can never mint new metric series)."""
    if request.command:
        name = "/" + request.command.lstrip("/").casefold()
        return name if name in _KNOWN_COMMANDS else "unknown"
    try:
        command, _args, _explicit = split_command(request.text[:200])
    except Exception:  # an unknown "/something": still a command attempt
        return "unknown"
    return command or "qa"


async def metrics_middleware(request: Request, desk, call_next: Callable[[Request], Awaitable[Reply]]) -> Reply:
    """Desk middleware: count and time every request through the core, and log it (never its text).

    Runs inside the router's ``user_errors_to_replies``, so a user mistake reaches it as an exception:
    it is counted with outcome ``error`` (the kind of the friendly reply it becomes), a bug as ``failed``.
    """
    label = command_label(request)
    started = time.perf_counter()
    outcome = "failed"
    try:
        reply = await call_next(request)
        outcome = reply.kind
        return reply
    except UserError:
        outcome = "error"
        raise
    finally:
        record_request(request.platform, label, outcome, request.mode, len(request.text),
                       time.perf_counter() - started)


def record_request(platform: str, command: str, outcome: str, mode: str, chars: int, seconds: float,
                   **log_fields: Any) -> None:
    """Count, time and log one answered request (the core's middleware calls it once per request)."""
    REQUEST_SECONDS.labels(platform, command).observe(seconds)
    REQUESTS.labels(platform, command, outcome).inc()
    if outcome in ("answer", "no_answer"):
        QA_RESULTS.labels("answered" if outcome == "answer" else "abstained", mode).inc()
    if _requests_log.isEnabledFor(logging.INFO):
        _requests_log.info(
            "answered",
            extra={"platform": platform, "command": command, "kind": outcome, "mode": mode, "chars": chars,
                   "ms": round(seconds * 1000, 2), **log_fields},
        )


def count_reminder_pass(report: Any) -> None:
    """The scheduler's hook: add one pass's counts (a ``bot.scheduler.PassReport``) to the metrics."""
    for event in REMINDER_EVENTS:
        n = getattr(report, event, 0)
        if n:
            REMINDERS.labels(event).inc(n)


# --------------------------------------------------------------- Slack Web API: retries and failures

_retry_log = logging.getLogger("chinadesk.webapi")


@dataclass(frozen=True)
class WebApiFailure:
    """Why a Slack Web API call failed, whatever shape the failure came in."""

    error: str  # Slack's error code ("not_in_channel"), else "http_<status>", "timeout" or the exception's type
    status: int | None = None  # the HTTP status, when an answer came back
    retry_after: float | None = None  # seconds, from a Retry-After header

    @property
    def rate_limited(self) -> bool:
        return self.status == 429 or self.error == "ratelimited"

    @property
    def server_error(self) -> bool:
        return self.status is not None and self.status >= 500


def _status_of(response: Any) -> int | None:
    """The HTTP status of a slack_sdk response, a retry handler's response or a bare aiohttp response."""
    for name in ("status_code", "status"):
        value = getattr(response, name, None)
        if isinstance(value, int):
            return value
    return None


def web_api_failure(exc: BaseException) -> WebApiFailure:
    """What a failed Web API call tells us. Never raises: slack_sdk hands over a ``SlackApiError`` whose
    response may hold a dict, the text of a proxy's error page, or (a body that claims JSON and is not)
    aiohttp's raw response; timeouts and connection errors come as plain exceptions."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = _status_of(response)
        data = getattr(response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        headers = getattr(response, "headers", None) or {}
        try:
            retry_after = float(headers.get("Retry-After") or headers.get("retry-after"))
        except (TypeError, ValueError, AttributeError):
            retry_after = None
        return WebApiFailure(str(code or f"http_{status or 'error'}"), status, retry_after)
    if isinstance(exc, TimeoutError):
        return WebApiFailure("timeout")
    return WebApiFailure(type(exc).__name__)


class _CountingRetries:
    """Mixin for slack_sdk retry handlers: count and log each retry before the handler's own wait."""

    reason = "retry"

    def __init__(self, max_retry_count: int = 1, *, platform: str = "slack", **kwargs: Any) -> None:
        super().__init__(max_retry_count=max_retry_count, **kwargs)  # type: ignore[call-arg]
        self.platform = platform

    async def prepare_for_next_attempt_async(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        WEB_API_RETRIES.labels(self.platform, self.reason).inc()
        _retry_log.warning(f"{self.reason.replace('_', ' ')}: retrying", extra={
            "platform": self.platform, "method": request.url.rsplit("/", 1)[-1],
            "error": type(error).__name__ if error else None,
            "status": response.status_code if response is not None else None,
        })
        await super().prepare_for_next_attempt_async(  # type: ignore[misc]
            state=state, request=request, response=response, error=error
        )


class CountingRateLimitHandler(_CountingRetries, AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (waits ``Retry-After``, then retries), counting each retry.

    ``max_wait``: a ``Retry-After`` longer than this many seconds is not waited out inside the call: the
    429 goes back to the caller (the scheduler reschedules the post, so a delivery never sits in a long
    wait while its lease runs out).
    """

    reason = "rate_limited"

    def __init__(self, max_retry_count: int = 1, *, max_wait: float | None = None, **kwargs: Any) -> None:
        super().__init__(max_retry_count, **kwargs)
        self.max_wait = max_wait

    async def _can_retry_async(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        if self.max_wait is None:
            return True
        after = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        try:
            wait = float(after[0] if isinstance(after, list) else after)  # type: ignore[arg-type]
        except (TypeError, ValueError, IndexError):
            wait = 1.0
        return wait <= self.max_wait


class CountingConnectionErrorHandler(_CountingRetries, AsyncConnectionErrorRetryHandler):
    """slack_sdk's connection-error handler (reset, refused...), timeouts included, counting each retry."""

    reason = "connection_error"

    def __init__(self, max_retry_count: int = 1, **kwargs: Any) -> None:
        super().__init__(max_retry_count, error_types=[
            ServerConnectionError, ServerDisconnectedError, ClientOSError, TimeoutError,
        ], **kwargs)


class CountingServerErrorHandler(_CountingRetries, AsyncServerErrorRetryHandler):
    """slack_sdk's server-error handler (backs off, then retries), counting each retry. Any 5xx counts,
    502 and 504 from gateways too, and so does a 5xx whose body is not the JSON it claims to be (slack_sdk
    reports that one as an error, not as a response)."""

    reason = "server_error"

    async def _can_retry_async(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        status = _status_of(response) if response is not None else (
            _status_of(error.response) if isinstance(error, SlackApiError) else None
        )
        return status is not None and status >= 500


def slack_retry_handlers(
    *, rate_limit_retries: int = 3, connection_retries: int = 1, server_error_retries: int = 0,
    max_rate_limit_wait: float | None = None,
) -> list[AsyncRetryHandler]:
    """The retry handlers every Slack ``AsyncWebClient`` in the project uses (the adapter's and the
    scheduler's): HTTP 429 waited out after ``Retry-After`` (up to ``max_rate_limit_wait`` seconds),
    connection errors and timeouts retried, and 5xx answers when ``server_error_retries``; each retry
    counted in ``chinadesk_web_api_retries_total``."""
    handlers: list[AsyncRetryHandler] = [
        CountingRateLimitHandler(max_retry_count=rate_limit_retries, max_wait=max_rate_limit_wait),
        CountingConnectionErrorHandler(max_retry_count=connection_retries),
    ]
    if server_error_retries:
        handlers.append(CountingServerErrorHandler(max_retry_count=server_error_retries))
    return handlers


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@web.middleware
async def http_middleware(request: web.Request, handler) -> web.StreamResponse:
    """aiohttp middleware: a request id for the logs, and per-route counts and latency.

    An incoming ``X-Request-Id`` is kept when it is a short token (a load balancer's), otherwise a new
    one is made: a client cannot put newlines or markup into our log lines through it.
    """
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _REQUEST_ID.match(incoming) else os.urandom(8).hex()
    token = request_id_var.set(rid)
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(route, str(status)).inc()
        request_id_var.reset(token)


async def metrics_endpoint(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


# ------------------------------------------------------------------------------------------------ logs

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


# Environment variables whose values are secrets: never printed, whatever the log level.
SECRET_VARIABLES = (
    "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_CLIENT_SECRET", "SLACK_APP_TOKEN", "MICROSOFT_APP_PASSWORD",
    "TOKEN_ENCRYPTION_KEY", "METRICS_TOKEN", "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTSECRET",
)
REDACTED = "[redacted]"
# Secrets by their shape, wherever they come from (a workspace's OAuth token was never in the environment):
# Slack tokens (bot, user, app-level, refresh, rotated), JWTs (Bot Framework and Azure tokens), bearer
# credentials, and the value after a key that names a secret (JSON, dict reprs, form bodies, headers).
_SECRET_SHAPES = re.compile(
    r"xox[a-z]-[A-Za-z0-9-]{6,}|xoxe(?:\.xox[a-z])?-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}"
    r"|eyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]{6,}"
    r"|(?P<scheme>(?i:bearer|basic)\s+)[\w.~+/=-]{8,}"
    r"|(?P<key>[\"']?(?i:access_token|refresh_token|bot_token|client_secret|password|signing_secret|app_token)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\"',&\s}]{4,}"
)


# Every match of _SECRET_SHAPES contains one of these (lower-cased): a cheap test before the regex.
_SHAPE_MARKERS = ("xox", "xapp-", "eyj", "bearer", "basic", "access_token", "refresh_token", "bot_token",
                  "client_secret", "password", "signing_secret", "app_token")


def _redact(match: re.Match[str]) -> str:
    return (match.group("scheme") or match.group("key") or "") + REDACTED


_NUMBERS = (bool, int, float)


class SecretFilter(logging.Filter):
    """On the root handler: scrub secrets from every record before it is written, at every level.

    Libraries log request and response bodies at DEBUG (slack_sdk the ``oauth.v2.access`` answer with its
    bot token, aiosqlite the SQL parameters of a stored installation...): the message, its arguments,
    the extra fields and the traceback text are all checked, for the configured secrets' values and for
    anything shaped like a token (:data:`_SECRET_SHAPES`).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for value in self.secrets:
            if value in text:
                text = text.replace(value, REDACTED)
        return _SECRET_SHAPES.sub(_redact, text)

    def suspect(self, text: str) -> bool:
        """Whether ``text`` may hold a secret (plain loops: this runs for every log line)."""
        for value in self.secrets:
            if value in text:
                return True
        lowered = text.lower()
        for marker in _SHAPE_MARKERS:
            if marker in lowered:
                return _SECRET_SHAPES.search(text) is not None
        return False

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call (arguments that do not fit): keep the template only
            message = str(record.msg)
        record.msg, record.args = message, None  # (rendered once: the formatter need not do it again)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        fields = {k: v if isinstance(v, str) else repr(v) for k, v in record.__dict__.items()
                  if k not in _STANDARD and v is not None and not isinstance(v, _NUMBERS)}
        # Most lines hold nothing secret: one look at all of the record's text decides.
        everything = "\n".join((message, record.exc_text or "", record.stack_info or "", *fields.values()))
        if not self.suspect(everything):
            return True
        record.msg = self.scrub(message)
        for key, text in fields.items():
            clean = self.scrub(text)
            if clean != text:
                setattr(record, key, clean)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The secrets configured in ``env``: :data:`SECRET_VARIABLES` (each key of a list) and the database
    password."""
    values = [part.strip() for name in SECRET_VARIABLES for part in env.get(name, "").split(",") if part.strip()]
    password = urlsplit(env.get("DATABASE_URL", "")).password
    return values + ([unquote(password)] if password else [])


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers in production."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info or record.exc_text:
            out["exc"] = record.exc_text or self.formatException(record.exc_info)  # (SecretFilter scrubs exc_text)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, with the extra fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k != "request_id"}
        if record.__dict__.get("request_id", "-") != "-":
            extra = {"rid": record.request_id, **extra}
        if extra:
            base += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info or record.exc_text:
            base += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return base


def configure_logging(level: str = "INFO", fmt: str = "auto", env: Mapping[str, str] | None = None) -> None:
    """JSON when asked or when stderr is not a terminal (a PaaS), readable text otherwise; secrets (those
    configured in ``env``, default the environment, and anything shaped like a token) are scrubbed."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    # The handler holds the level too: a library imported later that sets its own logger to DEBUG (bm25s
    # does, and it is imported lazily now) must not print below LOG_LEVEL.
    handler.setLevel(level)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(SecretFilter(secret_values(os.environ if env is None else env)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Neither formatter prints the caller's file and line, thread or process: don't have every record
    # walk the (deep, async) stack to find them. These are the logging docs' "Optimization" switches.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # Libraries log request bodies at DEBUG (and bm25s sets its own logger to DEBUG): keep them quieter.
    if level != "DEBUG":
        for noisy in ("slack_bolt", "slack_sdk", "botbuilder", "msrest", "aiohttp.access", "bm25s", "jieba",
                      "asyncio", "urllib3", "azure"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
