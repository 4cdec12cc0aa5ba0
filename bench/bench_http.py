"""Signed Slack slash commands over HTTP against ``chinadesk serve``, side by side with a bare aiohttp server.

    python bench/bench_http.py                          # 20,000 requests at concurrency 50, then 200 req/s
    python bench/bench_http.py --requests 2000 --rate-seconds 5      # a quick run
    python bench/bench_http.py --rounds 3               # alternate the two servers three times

Both servers run as subprocesses on 127.0.0.1 and get the *same* requests from the same aiohttp-client
load generator (this process): correctly signed ``application/x-www-form-urlencoded`` slash-command
bodies, a mix led by ``/china-filing facial-recognition from 2025-09-20``. China Desk runs as deployed
(``chinadesk serve``, SQLite, JSON logs at INFO, the scheduler on, Slack pointed at a local stand-in);
the baseline is a bare aiohttp "hello" handler that reads the body and answers ``hello``.

Two phases per server:

* closed loop: ``--requests`` requests, ``--concurrency`` in flight: throughput, p50/p99 latency;
* open loop: a fixed ``--rate`` for ``--rate-seconds`` seconds, latency measured from each request's
  *scheduled* send time (no coordinated omission): p50/p99 at that rate.

The mix repeats (as real slash-command traffic does), so after the first of each China Desk answers
most of it from its caches. A third China Desk phase shows the other end: deadline commands that
never repeat (a filing and a trigger day each), every one computed through bolt and the core.
Each closed-loop line also gives the server process's CPU per request (from /proc), which the
machine's noise moves much less than throughput.

The figure that matters is the ratio against the baseline measured in the same run, on the same machine.
For context a third server runs too (``--no-floor`` to skip it): a bare slack-bolt ``AsyncApp`` whose
command listener only acks a fixed one-block message, i.e. the cost of the Slack framework alone.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from common import (
    BOLT_FLOOR_SERVER,
    SIGNING_SECRET,
    FakeSlackThread,
    Server,
    cpu_seconds,
    machine,
    ms,
    pct,
    slack_headers,
    start_chinadesk,
    start_hello,
)

# (command, text, weight): the example first; a realistic mix of cards, menus, deadlines and help.
MIX = [
    ("/china-filing", "facial-recognition from 2025-09-20", 5),
    ("/china-filing", "facial-recognition", 2),
    ("/china-filing", "pipl from 2025-10-08", 2),
    ("/china-filing", "", 1),
    ("/china-sector", "ev", 1),
    ("/china-platform", "xiaohongshu", 1),
    ("/china-filing", "help", 1),
    ("/china-filing", "facial-recogniton", 1),  # a typo: "did you mean"
]


def slash_command(command: str, text: str, channel: str, team: str = "T0001") -> bytes:
    return urlencode({
        "token": "legacy", "team_id": team, "team_domain": "acme", "channel_id": channel,
        "channel_name": "general", "user_id": "U2147483697", "user_name": "alex", "command": command,
        "text": text, "api_app_id": "A0001", "is_enterprise_install": "false",
        "response_url": "http://127.0.0.1:9/response/none", "trigger_id": "1.2.3",
    }).encode()


def bodies(team: str = "T0001") -> list[bytes]:
    return [slash_command(command, text, f"C{n}{w:02d}", team)
            for n, (command, text, weight) in enumerate(MIX) for w in range(weight)]


# Filings with a deadline rule, for never-repeated deadline commands.
DEADLINE_FILINGS = ("facial-recognition", "algorithm-filing", "cyber-incident-reporting", "deep-synthesis",
                    "icp-beian", "mlps", "pi-protection-officer", "standard-contract")


def cold_bodies(count: int) -> list[bytes]:
    """Deadline commands that never repeat (a filing and a trigger day in 2020-2027 each): no cache can
    answer them, so each one goes through bolt and the core and is computed."""
    first, days = dt.date(2020, 1, 1), (dt.date(2027, 12, 31) - dt.date(2020, 1, 1)).days
    pairs = [(filing, first + dt.timedelta(days=d)) for d in range(days) for filing in DEADLINE_FILINGS]
    return [slash_command("/china-filing", f"{filing} from {day}", f"C{i % 50:02d}")
            for i, (filing, day) in enumerate(pairs[:count])]


@dataclass
class Phase:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    statuses: Counter
    bad_bodies: int
    server_cpu: float | None = None  # seconds of the server process's CPU during the phase

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        errors = sum(n for s, n in self.statuses.items() if s != 200) + self.bad_bodies
        p50, p99, top = (ms(v) for v in (pct(self.latencies, 50), pct(self.latencies, 99), max(self.latencies)))
        cpu = f"  server CPU {self.server_cpu / self.requests * 1e6:4.0f} us/req" if self.server_cpu else ""
        return (f"{self.name:<34} {self.requests:>7} req  {self.throughput:>8.0f} req/s  p50 {p50:>10}"
                f"  p99 {p99:>10}  max {top:>10}  errors {errors}{cpu}")


def _check(body: bytes, expect_card: bool) -> bool:
    if not expect_card:
        return body == b"hello"
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return bool(message.get("blocks")) and bool(message.get("text"))


async def closed_loop(name: str, server: Server, payloads: list[bytes], total: int, concurrency: int,
                      expect_card: bool) -> Phase:
    url = f"{server.url}/slack/events"
    counter = itertools.count()
    latencies: list[float] = []
    statuses: Counter = Counter()
    bad = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal bad
            while (i := next(counter)) < total:
                body = payloads[i % len(payloads)]
                headers = slack_headers(body)
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    answer = await response.read()
                latencies.append(time.perf_counter() - started)
                statuses[response.status] += 1
                if response.status == 200 and i % 97 == 0 and not _check(answer, expect_card):
                    bad += 1

        started, cpu = time.perf_counter(), cpu_seconds(server.proc.pid)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - started, cpu_seconds(server.proc.pid) - cpu
    return Phase(name, total, seconds, latencies, statuses, bad, cpu)


async def open_loop(name: str, server: Server, payloads: list[bytes], rate: float, duration: float,
                    expect_card: bool) -> Phase:
    """``rate`` requests a second for ``duration`` seconds; latency from each request's scheduled time."""
    url = f"{server.url}/slack/events"
    total = int(rate * duration)
    latencies: list[float] = []
    statuses: Counter = Counter()
    bad = 0
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Open the connections first, so the measured phase is steady state rather than TCP handshakes.
        await asyncio.gather(*(session.get(f"{server.url}/healthz") for _ in range(20)))
        t0 = loop.time() + 0.2

        async def one(i: int) -> None:
            nonlocal bad
            intended = t0 + i / rate
            delay = intended - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            body = payloads[i % len(payloads)]
            async with session.post(url, data=body, headers=slack_headers(body)) as response:
                answer = await response.read()
            latencies.append(loop.time() - intended)
            statuses[response.status] += 1
            if response.status == 200 and i % 31 == 0 and not _check(answer, expect_card):
                bad += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(total)))
        seconds = time.perf_counter() - started
    return Phase(name, total, seconds, latencies, statuses, bad)


async def measure(server: Server, label: str, args: argparse.Namespace, expect_card: bool) -> tuple[Phase, Phase]:
    payloads = bodies()
    await closed_loop("warm-up", server, payloads, args.warmup, args.concurrency, expect_card)
    closed = await closed_loop(f"{label} c={args.concurrency}", server, payloads, args.requests, args.concurrency,
                               expect_card)
    opened = await open_loop(f"{label} {args.rate:.0f} req/s", server, payloads, args.rate, args.rate_seconds,
                             expect_card)
    return closed, opened


async def measure_cold(server: Server, args: argparse.Namespace) -> Phase:
    """China Desk answering deadlines it has never seen: every request computed through bolt and the core."""
    count = max(args.requests // 4, 1000)
    return await closed_loop(f"chinadesk, all new c={args.concurrency}", server, cold_bodies(count), count,
                             args.concurrency, True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="closed-loop requests per server (20000)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight in the closed loop (50)")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop rate, requests/s (200)")
    parser.add_argument("--rate-seconds", type=float, default=15.0, help="open-loop duration (15 s)")
    parser.add_argument("--warmup", type=int, default=500, help="unrecorded requests before each phase (500)")
    parser.add_argument("--rounds", type=int, default=2, help="alternate baseline/China Desk this many times (2)")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare slack-bolt server")
    args = parser.parse_args()

    print(f"bench_http: {machine()}")
    print(f"load generator: aiohttp client in one process; closed loop {args.requests} requests at concurrency "
          f"{args.concurrency}; open loop {args.rate:.0f} req/s for {args.rate_seconds:.0f} s; warm-up {args.warmup}")
    slack = FakeSlackThread()
    env = {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_BOT_TOKEN": slack.api.bot_token,
           "SLACK_API_URL": slack.api.api_url}
    ratios, p99s, baseline_p99s, floor_ratios, cold_ratios = [], [], [], [], []
    rss_lines = []
    try:
        for round_ in range(1, args.rounds + 1):
            print(f"\nround {round_}")
            hello = start_hello()
            try:
                base_closed, base_open = asyncio.run(measure(hello, "bare aiohttp hello", args, expect_card=False))
            finally:
                hello.stop()
            floor = None
            if not args.no_floor:
                bolt = start_hello(BOLT_FLOOR_SERVER, env)
                try:
                    floor = asyncio.run(measure(bolt, "bare slack-bolt, ack only", args, expect_card=True))
                finally:
                    bolt.stop()
            desk = start_chinadesk(env)
            try:
                rss_start = desk.rss()
                desk_closed, desk_open = asyncio.run(measure(desk, "chinadesk serve", args, expect_card=True))
                desk_cold = asyncio.run(measure_cold(desk, args))
                rss_end = desk.rss()
            finally:
                stop_s = desk.stop()
            phases = [base_closed, *(floor[:1] if floor else []), desk_closed, desk_cold,
                      base_open, *(floor[1:] if floor else []), desk_open]
            for phase in phases:
                print("  " + phase.line())
            if floor:
                floor_ratios.append(floor[0].throughput / base_closed.throughput)
            ratio = desk_closed.throughput / base_closed.throughput
            ratios.append(ratio)
            cold_ratios.append(desk_cold.throughput / base_closed.throughput)
            p99s.append(pct(desk_open.latencies, 99))
            baseline_p99s.append(pct(base_open.latencies, 99))
            print(f"  throughput ratio chinadesk/baseline: {ratio:.1%}   "
                  f"p99 at {args.rate:.0f} req/s: chinadesk {ms(p99s[-1])}, baseline {ms(baseline_p99s[-1])}")
            rss_lines.append(f"  round {round_}: start-up {rss_start['VmRSS']:.0f} MiB, after load "
                             f"{rss_end['VmRSS']:.0f} MiB (peak {rss_end['VmHWM']:.0f} MiB); ready in "
                             f"{desk.ready_s:.2f} s; SIGTERM to exit {stop_s:.2f} s")
    finally:
        slack.close()

    print("\nsummary")
    print(f"  throughput ratio (chinadesk / bare aiohttp), per round: "
          f"{', '.join(f'{r:.1%}' for r in ratios)}; median {statistics.median(ratios):.1%}  (target >= 40%)")
    print(f"  never-repeated deadlines (no cache can answer) / bare aiohttp, per round: "
          f"{', '.join(f'{r:.1%}' for r in cold_ratios)}; median {statistics.median(cold_ratios):.1%}")
    print(f"  chinadesk p99 at {args.rate:.0f} req/s, per round: {', '.join(ms(p) for p in p99s)}; "
          f"median {ms(statistics.median(p99s))}  (target < 25 ms)")
    print(f"  baseline p99 at {args.rate:.0f} req/s, per round: {', '.join(ms(p) for p in baseline_p99s)}")
    if floor_ratios:
        print(f"  bare slack-bolt (ack only) / bare aiohttp, per round: {', '.join(f'{r:.1%}' for r in floor_ratios)}; "
              f"median {statistics.median(floor_ratios):.1%}  (the framework's own floor)")
    print("  chinadesk serve resident memory (VmRSS):")
    for line in rss_lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
