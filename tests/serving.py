"""``chinadesk serve`` in a subprocess, for tests of what the whole process does (exit status, signals,
logs, bound ports), and a peer that accepts TCP connections and never answers.

:data:`CHINADESK` is the console script of this environment; :func:`serve` runs ``chinadesk serve`` for the
length of a ``with`` block, :func:`start_serve` starts it and leaves the process to the caller."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

CHINADESK = shutil.which("chinadesk") or str(Path(sys.executable).with_name("chinadesk"))


class Serving:
    """A running ``chinadesk serve``: its process, the log lines read so far, its port."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.port: int | None = None

    async def read_until(self, pattern: str, within: float) -> re.Match[str]:
        """Read log lines until one matches ``pattern`` (fails after ``within`` seconds in all)."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = "".join(self.lines[-20:])
                raise AssertionError(f"no log line matching {pattern!r} within {within}s:\n{seen}")
            try:
                raw = await asyncio.wait_for(self.proc.stderr.readline(), remaining)
            except TimeoutError:
                continue
            if not raw:
                raise AssertionError(f"exited ({await self.proc.wait()}) before {pattern!r}:\n" + "".join(self.lines))
            self.lines.append(raw.decode())
            found = re.search(pattern, self.lines[-1])
            if found:
                return found

    async def stop(self, sig: signal.Signals) -> tuple[int, float, str]:
        """Send ``sig``; the exit status, the seconds it took, and the rest of the log."""
        signalled = time.monotonic()
        self.proc.send_signal(sig)
        _out, err = await asyncio.wait_for(self.proc.communicate(), 20)
        return self.proc.returncode, time.monotonic() - signalled, "".join(self.lines) + err.decode()


@asynccontextmanager
async def serve(env: dict[str, str], cwd: Path, *, listening: bool = True) -> AsyncIterator[Serving]:
    """``chinadesk serve --port 0`` in a subprocess (killed at the end whatever happened)."""
    proc = await asyncio.create_subprocess_exec(
        CHINADESK, "serve", "--host", "127.0.0.1", "--port", "0", env=env, cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    serving = Serving(proc)
    try:
        if listening:
            found = await serving.read_until(r"listening on http://127\.0\.0\.1:(\d+)", 30)
            serving.port = int(found.group(1))
        yield serving
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def start_serve(env: dict[str, str], cwd: Path) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    """``chinadesk serve --port 0`` in a subprocess; returns it, its port and its stderr lines so far."""
    proc = await asyncio.create_subprocess_exec(
        CHINADESK, "serve", "--host", "127.0.0.1", "--port", "0", env=env, cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(proc.stderr.readline(), 60)
        if not raw:
            raise AssertionError("chinadesk serve exited before listening:\n" + "".join(lines))
        lines.append(raw.decode())
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", lines[-1])
        if found:
            return proc, int(found.group(1)), lines


async def healthz(port: int) -> int:
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=1)) as response:
        return response.status


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Silent:
    """Accepts TCP connections and never answers (a Slack behind a black-holing network)."""

    async def __aenter__(self) -> Silent:
        self._held: list[asyncio.StreamWriter] = []
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/api/"
        return self

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._held.append(writer)
        await reader.read()

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._held:
            writer.close()
        self.server.close()
