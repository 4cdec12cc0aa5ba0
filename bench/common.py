"""Shared pieces of the benchmarks: servers in subprocesses, a local Slack Web API, load generation.

Everything listens on 127.0.0.1 only, and every loop is bounded by a request count or a duration.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CHINADESK = shutil.which("chinadesk") or str(Path(sys.executable).with_name("chinadesk"))
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"

HELLO_SERVER = r'''
import sys
from aiohttp import web

async def hello(request):
    await request.read()  # the same body as China Desk gets, read the same way
    return web.Response(text="hello")

async def main():
    app = web.Application()
    app.router.add_post("/slack/events", hello)
    app.router.add_get("/healthz", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(f"listening on http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", file=sys.stderr, flush=True)
    import asyncio
    await asyncio.Event().wait()

import asyncio
asyncio.run(main())
'''


BOLT_FLOOR_SERVER = r'''
import asyncio, os, sys
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

bolt = AsyncApp(signing_secret=os.environ["SLACK_SIGNING_SECRET"], process_before_response=True,
                client=AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]))
MESSAGE = {"text": "hello", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}]}

async def command(ack):
    await ack(**MESSAGE)

for name in ("/china-filing", "/china-sector", "/china-platform"):
    bolt.command(name)(command)

async def events(request):
    return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

async def healthz(request):
    return web.Response(text="ok")

async def main():
    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(f"listening on http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", file=sys.stderr, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
'''


# --------------------------------------------------------------------------------------- the machine


def machine() -> str:
    cores = os.cpu_count()
    mem = ""
    try:
        total_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                        if line.startswith("MemTotal"))
        mem = f", {total_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return f"{cores} cores{mem}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def rss_mib(pid: int) -> dict[str, float]:
    """Resident size now (VmRSS) and at its peak (VmHWM), in MiB, from /proc/<pid>/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) of values, linear interpolation."""
    if not values:
        return float("nan")
    data = sorted(values)
    k = (len(data) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# ---------------------------------------------------------------------------------------- Slack side


def slack_headers(body: bytes, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={digest}"}


class FakeSlackThread:
    """tests/slack_server.FakeSlack on its own event loop in a thread (out of the load generator's way)."""

    def __init__(self) -> None:
        from slack_server import FakeSlack

        self.loop = asyncio.new_event_loop()
        self.api = FakeSlack()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.api.start(), self.loop).result(10)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.api.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


FAKE_SLACK_SERVER = r'''
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from slack_server import FakeSlack

async def main():
    api = await FakeSlack().start()
    print(f"listening on http://127.0.0.1:{api.port}", file=sys.stderr, flush=True)
    while True:  # bounded memory: forget recorded calls (the benchmarks check what the bot reports)
        await asyncio.sleep(1)
        api.calls.clear()

asyncio.run(main())
'''


class FakeSlackProcess:
    """tests/slack_server.FakeSlack in its own process, as Slack is: it competes for no GIL with the bot."""

    def __init__(self) -> None:
        from slack_server import FakeSlack

        self.server = start_hello(FAKE_SLACK_SERVER, args=[str(ROOT / "tests")], ready_path="/api/api.test",
                                  ready_method="POST")
        self.bot_token = FakeSlack().bot_token
        self.api_url = f"{self.server.url}/api/"

    def close(self) -> None:
        self.server.stop()


# --------------------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A server in a subprocess, listening on a port it chose (``--port 0``)."""

    proc: subprocess.Popen
    port: int
    log_path: Path
    started_s: float  # from spawn to listening
    ready_s: float  # from spawn to the first 200 from /readyz (or /healthz for the baseline)
    _tmp: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> dict[str, float]:
        return rss_mib(self.proc.pid)

    def stop(self, timeout: float = 15.0) -> float:
        """SIGTERM; returns the seconds it took to exit."""
        started = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
        return time.perf_counter() - started


def _wait_listening(proc: subprocess.Popen, log_path: Path, started: float, timeout: float = 60.0) -> int:
    deadline = started + timeout
    while time.perf_counter() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before listening:\n{text[-3000:]}")
        time.sleep(0.005)
    raise RuntimeError(f"server did not listen within {timeout}s:\n{log_path.read_text(errors='replace')[-3000:]}")


def _wait_ready(url: str, started: float, timeout: float = 60.0, method: str = "GET") -> float:
    deadline = started + timeout
    while time.perf_counter() < deadline:
        try:
            request = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} not ready within {timeout}s")


def start_chinadesk(env_extra: dict[str, str], *, database_url: str | None = None) -> Server:
    """``chinadesk serve --port 0`` with a fresh SQLite database (unless given one) and the given env."""
    tmp = tempfile.TemporaryDirectory(prefix="chinadesk-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_APP", "DATABASE_URL"))}
    env.update(DATABASE_URL=database_url or f"sqlite:///{tmp.name}/bench.sqlite3", LOG_FORMAT="json",
               LOG_LEVEL="INFO", **env_extra)
    log_path = Path(tmp.name) / "serve.log"
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([CHINADESK, "serve", "--host", "127.0.0.1", "--port", "0"], env=env, cwd=tmp.name,
                                stdout=subprocess.DEVNULL, stderr=log)
    port = _wait_listening(proc, log_path, started)
    listening = time.perf_counter() - started
    ready = _wait_ready(f"http://127.0.0.1:{port}/readyz", started)
    return Server(proc, port, log_path, listening, ready, tmp)


def start_hello(source: str = HELLO_SERVER, env_extra: dict[str, str] | None = None, *, args: list[str] = (),
                ready_path: str = "/healthz", ready_method: str = "GET") -> Server:
    """The bare aiohttp baseline (or another small server script that prints "listening on ...")."""
    tmp = tempfile.TemporaryDirectory(prefix="hello-bench-")
    log_path = Path(tmp.name) / "hello.log"
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", source, *args], stdout=subprocess.DEVNULL, stderr=log,
                                env={**os.environ, **(env_extra or {})})
    port = _wait_listening(proc, log_path, started)
    listening = time.perf_counter() - started
    ready = _wait_ready(f"http://127.0.0.1:{port}{ready_path}", started, method=ready_method)
    return Server(proc, port, log_path, listening, ready, tmp)


def median_of(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"
