"""Metrics (Prometheus) and structured logs, shared by every surface.

Metrics are defined once here so that names stay consistent; the core's Desk middleware counts every
request by platform/command/outcome, the HTTP middleware times every endpoint, and the scheduler and
Web API clients count their own events. Logs carry a request id (from ``X-Request-Id`` or generated)
and never a secret or a user's message at info level: we log its length and the command only.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from handlers.request import Reply, Request
from handlers.router import split_command

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter(
    "chinadesk_requests_total", "Requests answered by the core", ["platform", "command", "outcome"]
)
REQUEST_SECONDS = Histogram(
    "chinadesk_request_seconds", "Time the core took to answer", ["platform", "command"], buckets=_LATENCY_BUCKETS
)
QA_RESULTS = Counter("chinadesk_qa_total", "Channel Q&A outcomes", ["result"])  # answered | abstained
HTTP_REQUESTS = Counter("chinadesk_http_requests_total", "HTTP requests", ["route", "status"])
HTTP_SECONDS = Histogram("chinadesk_http_request_seconds", "HTTP latency", ["route"], buckets=_LATENCY_BUCKETS)
REMINDERS = Counter("chinadesk_reminders_total", "Reminder posts by what happened", ["event"])  # due posted late failed
WEB_API_RETRIES = Counter("chinadesk_web_api_retries_total", "Retried platform API calls", ["platform", "reason"])
READY = Gauge("chinadesk_ready", "1 when content is loaded and the database answers")


def command_label(request: Request) -> str:
    """A low-cardinality label for a request: the slash command, or ``qa`` for questions."""
    if request.command:
        return "/" + request.command.lstrip("/").casefold()[:32]
    try:
        command, _args, _explicit = split_command(request.text[:200])
    except Exception:  # an unknown "/something": still a command attempt
        return "unknown"
    return command or "qa"


async def metrics_middleware(request: Request, desk, call_next: Callable[[Request], Awaitable[Reply]]) -> Reply:
    """Desk middleware: count and time every request through the core."""
    label = command_label(request)
    started = time.perf_counter()
    reply = await call_next(request)
    REQUEST_SECONDS.labels(request.platform, label).observe(time.perf_counter() - started)
    REQUESTS.labels(request.platform, label, reply.kind).inc()
    if reply.kind in ("answer", "no_answer"):
        QA_RESULTS.labels("answered" if reply.kind == "answer" else "abstained").inc()
    logging.getLogger("chinadesk.requests").info(
        "answered",
        extra={"platform": request.platform, "command": label, "kind": reply.kind,
               "chars": len(request.text), "ms": round((time.perf_counter() - started) * 1000, 2)},
    )
    return reply


@web.middleware
async def http_middleware(request: web.Request, handler) -> web.StreamResponse:
    """aiohttp middleware: a request id for the logs, and per-route counts and latency."""
    rid = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex[:16]
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
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
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
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """JSON when asked or when stderr is not a terminal (a PaaS), readable text otherwise."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries log request bodies at DEBUG; keep them quieter than ours.
    if level != "DEBUG":
        for noisy in ("slack_bolt", "slack_sdk", "botbuilder", "msrest", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
