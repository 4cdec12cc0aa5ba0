"""Never-repeated signed slash commands over HTTP: ``chinadesk serve`` against a bare slack-bolt app.

    python bench/bench_http.py                        # 2 rounds of 10,000 requests per server at concurrency 50
    python bench/bench_http.py --requests 3000        # a quick run
    python bench/bench_http.py --hello                # also a bare aiohttp "hello" server, for context

Both servers run as subprocesses on 127.0.0.1 and get the same kind of requests from the same aiohttp-client
load generator (this process): correctly signed ``application/x-www-form-urlencoded`` slash commands, each
one different from every other in the run, so that no cache anywhere (the core's reply cache, a rendered
card, a template) can answer it:

* 60 %: a deadline, ``/china-filing <filing> from <day>``: one of the filings with a deadline rule and a
  trigger day between 2020 and 2027, in English or ``--lang zh``: working days computed, the timeline
  rendered through the Jinja2 templates and Block Kit;
* 35 %: a card asked with a typo, ``/china-sector electirc-vehicles`` (sector, platform and filing names
  with one letter changed, each typo used once): the "did you mean" reply, fuzzy-matched against every name;
* 5 %: ``/china-filing upcoming <N>`` (N from 1 to 730 days, each N once per language).

China Desk runs as deployed (``chinadesk serve``, SQLite, JSON logs at INFO, the scheduler on, Slack pointed
at a local stand-in), every request through bolt and the core. The baseline, measured in the same run, is
a bare slack-bolt ``AsyncApp`` whose command listener only acks a fixed one-block message: the cost of the
Slack framework alone. Rounds alternate the two servers.

Closed loop: ``--requests`` requests, ``--concurrency`` in flight: throughput, p50/p99 latency, and the
server process's CPU per request (from /proc; the machine's noise moves it much less than throughput).
Resident memory (VmRSS, peak VmHWM) of ``chinadesk serve`` after its load. Prints figures; asserts nothing.
Targets (issue 14): throughput >= 50 % of bare slack-bolt; p99 < 100 ms at concurrency 50; RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import random
import statistics
import string
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from common import (
    BOLT_FLOOR_SERVER,
    ROOT,
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

# A repeating mix, as real slash-command traffic is (bench_memory.py loads the server with it).
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

# Filings with a deadline rule, for never-repeated deadline commands.
DEADLINE_FILINGS = ("facial-recognition", "algorithm-filing", "cyber-incident-reporting", "deep-synthesis",
                    "icp-beian", "mlps", "pi-protection-officer", "standard-contract")
LANGUAGE_FLAGS = ("", " --lang zh")


def slash_command(command: str, text: str, channel: str, team: str = "T0001", user: str = "U2147483697") -> bytes:
    return urlencode({
        "token": "legacy", "team_id": team, "team_domain": "acme", "channel_id": channel,
        "channel_name": "general", "user_id": user, "user_name": "alex", "command": command,
        "text": text, "api_app_id": "A0001", "is_enterprise_install": "false",
        "response_url": "http://127.0.0.1:9/response/none", "trigger_id": "1.2.3",
    }).encode()


def bodies(team: str = "T0001") -> list[bytes]:
    """The repeating mix, one body per weight."""
    return [slash_command(command, text, f"C{n}{w:02d}", team)
            for n, (command, text, weight) in enumerate(MIX) for w in range(weight)]


def _topic_names() -> dict[str, list[str]]:
    """Sector, platform and filing names, from the content packs (so typos stay typos of real names)."""
    sys.path.insert(0, str(ROOT))
    from content.loader import load_library

    names: dict[str, list[str]] = {"/china-sector": [], "/china-platform": [], "/china-filing": []}
    command_of = {"sector": "/china-sector", "calendar": "/china-sector", "platform": "/china-platform",
                  "filing": "/china-filing"}
    for topic in load_library().topics.values():
        command = command_of.get(str(getattr(topic.kind, "value", topic.kind)))
        if command:
            names[command].append(topic.id)
    return names


def _typos(names: dict[str, list[str]], rng: random.Random) -> Iterator[tuple[str, str]]:
    """(command, name with one letter changed), each once, in random order."""
    candidates = [(command, name[:i] + letter + name[i + 1:])
                  for command, ids in names.items() for name in ids for i, ch in enumerate(name) if ch.isalpha()
                  for letter in string.ascii_lowercase if letter != ch]
    valid = {name for ids in names.values() for name in ids}
    rng.shuffle(candidates)
    return ((command, text) for command, text in candidates if text not in valid)


def never_repeated(seed: int = 14) -> Iterator[bytes]:
    """An endless-enough stream of signed-able command bodies, no two alike (60/35/5 %, see the docstring)."""
    rng = random.Random(seed)
    first, days = dt.date(2020, 1, 1), (dt.date(2027, 12, 31) - dt.date(2020, 1, 1)).days + 1
    deadlines = [(filing, first + dt.timedelta(days=d), flag)
                 for filing in DEADLINE_FILINGS for d in range(days) for flag in LANGUAGE_FLAGS]
    rng.shuffle(deadlines)
    upcoming = [(n, flag) for n in range(1, 731) for flag in LANGUAGE_FLAGS]
    rng.shuffle(upcoming)
    deadline_iter, upcoming_iter = iter(deadlines), iter(upcoming)
    typo_iter = _typos(_topic_names(), rng)
    seen: set[tuple[str, str]] = set()
    for i in itertools.count():
        roll = rng.random()
        try:
            if roll < 0.60:
                filing, day, flag = next(deadline_iter)
                command, text = "/china-filing", f"{filing} from {day.isoformat()}{flag}"
            elif roll < 0.95:
                command, text = next(typo_iter)
                text += rng.choice(LANGUAGE_FLAGS)
            else:
                n, flag = next(upcoming_iter)
                command, text = "/china-filing", f"upcoming {n}{flag}"
        except StopIteration:
            return
        if (command, text) in seen:  # (a typo with and without the flag can meet; never send one twice)
            continue
        seen.add((command, text))
        yield slash_command(command, text, f"C{i % 50:02d}", user=f"U{i % 997:05d}")


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

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200) + self.bad_bodies

    def line(self) -> str:
        p50, p99, top = (ms(v) for v in (pct(self.latencies, 50), pct(self.latencies, 99), max(self.latencies)))
        cpu = f"  server CPU {self.server_cpu / self.requests * 1e6:5.0f} us/req" if self.server_cpu else ""
        return (f"{self.name:<32} {self.requests:>6} req  {self.throughput:>7.0f} req/s  p50 {p50:>9}"
                f"  p99 {p99:>9}  max {top:>9}  errors {self.errors}{cpu}")


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
    """``total`` requests, ``concurrency`` in flight; ``payloads`` are cycled (give ``total`` of them for
    no repeats). Every request is signed when it is sent, as Slack does."""
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


async def measure(server: Server, label: str, warmup: list[bytes], measured: list[bytes], concurrency: int,
                  expect_card: bool) -> Phase:
    await closed_loop("warm-up", server, warmup, len(warmup), concurrency, expect_card)
    return await closed_loop(f"{label} c={concurrency}", server, measured, len(measured), concurrency, expect_card)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="measured requests per server per round")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight (50)")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured requests before each phase (500)")
    parser.add_argument("--rounds", type=int, default=2, help="alternate bolt / China Desk this many times (2)")
    parser.add_argument("--hello", action="store_true", help="also measure a bare aiohttp 'hello' server")
    args = parser.parse_args()

    print(f"bench_http: {machine()}")
    print(f"load generator: aiohttp client in one process; {args.requests} never-repeated signed slash commands "
          f"per server per round at concurrency {args.concurrency}; warm-up {args.warmup}; {args.rounds} rounds")
    stream = never_repeated()
    slack = FakeSlackThread()
    env = {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_BOT_TOKEN": slack.api.bot_token,
           "SLACK_API_URL": slack.api.api_url}
    ratios, p99s, p50s, bolt_p99s, rss = [], [], [], [], []
    try:
        for round_ in range(1, args.rounds + 1):
            print(f"\nround {round_}")
            # The same commands for both servers in a round (bolt only acks them), none seen before.
            warmup = list(itertools.islice(stream, args.warmup))
            measured = list(itertools.islice(stream, args.requests))
            if len(measured) < args.requests:
                raise SystemExit("ran out of never-repeated commands: ask for fewer requests or rounds")
            phases = []
            if args.hello:
                hello = start_hello()
                try:
                    phases.append(asyncio.run(measure(hello, "bare aiohttp hello", warmup, measured,
                                                      args.concurrency, expect_card=False)))
                finally:
                    hello.stop()
            bolt = start_hello(BOLT_FLOOR_SERVER, env)
            try:
                floor = asyncio.run(measure(bolt, "bare slack-bolt, ack only", warmup, measured,
                                            args.concurrency, expect_card=True))
            finally:
                bolt.stop()
            desk = start_chinadesk(env)
            try:
                rss_start = desk.rss()
                cold = asyncio.run(measure(desk, "chinadesk serve, never repeated", warmup, measured,
                                           args.concurrency, expect_card=True))
                rss_end = desk.rss()
            finally:
                desk.stop()
            for phase in (*phases, floor, cold):
                print("  " + phase.line())
            ratios.append(cold.throughput / floor.throughput)
            p50s.append(pct(cold.latencies, 50))
            p99s.append(pct(cold.latencies, 99))
            bolt_p99s.append(pct(floor.latencies, 99))
            rss.append((rss_start["VmRSS"], rss_end["VmRSS"], rss_end["VmHWM"]))
            print(f"  throughput chinadesk / bare slack-bolt: {ratios[-1]:.1%}; chinadesk RSS at start "
                  f"{rss_start['VmRSS']:.0f} MiB, after load {rss_end['VmRSS']:.0f} MiB "
                  f"(peak {rss_end['VmHWM']:.0f} MiB)")
    finally:
        slack.close()

    print("\nsummary (never-repeated commands, concurrency "
          f"{args.concurrency}, {args.requests} requests per server per round)")
    print(f"  throughput chinadesk / bare slack-bolt, per round: {', '.join(f'{r:.1%}' for r in ratios)}; "
          f"median {statistics.median(ratios):.1%}  (target >= 50%)")
    print(f"  chinadesk p50 per round: {', '.join(ms(p) for p in p50s)}; "
          f"p99 per round: {', '.join(ms(p) for p in p99s)}; median p99 {ms(statistics.median(p99s))}"
          f"  (target < 100 ms)")
    print(f"  bare slack-bolt p99 per round: {', '.join(ms(p) for p in bolt_p99s)}")
    after = ", ".join(f"{end:.0f} MiB (peak {peak:.0f})" for _, end, peak in rss)
    print(f"  chinadesk RSS after load, per round: {after}  (target < 150 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
