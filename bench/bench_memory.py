"""Start-up time and memory of ``chinadesk serve``. Prints figures; asserts nothing.

    python bench/bench_memory.py                 # 5 start-ups, a breakdown, then RSS before/after a mixed load
    python bench/bench_memory.py --startups 10 --commands 20000 --questions 2000

1. start-up: ``chinadesk serve --port 0`` is started ``--startups`` times (fresh SQLite each time); the time
   from spawning the process to its first 200 from ``GET /readyz`` (the number a deployment waits for),
   and its resident size then (VmRSS).
2. where the memory and the start-up time go: the same steps as ``create_app`` run one by one in a fresh
   interpreter, with RSS and time after each.
3. load: one server gets ``--commands`` signed slash commands (the bench_http mix) and ``--questions``
   channel questions (app_mention events, answered in the background and posted to a local Slack
   stand-in); VmRSS and the peak (VmHWM) before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from bench_http import bodies, closed_loop
from common import ROOT, SIGNING_SECRET, FakeSlackProcess, machine, median_of, slack_headers, start_chinadesk

BREAKDOWN = r'''
import gc, json, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
out = [("interpreter", time.perf_counter(), rss())]
gc.disable()  # as bot.server does during start-up
import bot.cli, bot.app, bot.server
out.append(("import the app (aiohttp, pydantic, jinja2, numpy, bm25s, jieba code...)", time.perf_counter(), rss()))
import bot.slack.adapter, bot.teams.agents  # the default Teams engine (botbuilder only with TEAMS_ENGINE=botbuilder)
out.append(("import the platforms (slack-bolt, Microsoft 365 Agents SDK)", time.perf_counter(), rss()))
from content.loader import load_library
library = load_library()
library.compile_templates()
out.append(("load and validate the content packs, compile the templates", time.perf_counter(), rss()))
import handlers.qa as qa
from bot.config import Settings
from handlers.qa.cache import load_index
index = load_index(library, Settings.from_env().store.cache_dir)  # as bot.desk.build_desk does
jieba = "jieba dictionary included: the cache was built now" if "jieba" in sys.modules else "from the on-disk cache"
out.append((f"Q&A index ({jieba})", time.perf_counter(), rss()))
qa.base_jieba()
out.append(("(later) jieba dictionary, at the first Chinese question", time.perf_counter(), rss()))
gc.freeze(); gc.enable()
print(json.dumps(out))
'''

QUESTIONS = [
    "how long does the CAC take to review a facial recognition filing?",
    "do we need an ICP licence to sell online in China?",
    "what is the threshold for a data export security assessment?",
    "how do foreign brands open a store on Tmall Global?",
    "when is Double 11 this year?",
    "what are the penalties under PIPL?",
    "which platform is best for beauty brands?",
    "what is the best pizza in Naples?",
]


def mention(i: int) -> bytes:
    event = json.loads((ROOT / "tests" / "fixtures" / "slack" / "app_mention.json").read_text(encoding="utf-8"))
    event["event_id"] = f"EvMem{i}"
    event["event"]["text"] = f"<@UBOT> {QUESTIONS[i % len(QUESTIONS)]}"
    event["event"]["ts"] = f"1758506400.{i:06d}"
    event["event"]["channel"] = f"CMEM{i % 50}"
    return json.dumps(event).encode()


async def questions(url: str, n: int, concurrency: int = 20) -> float:
    sent = 0
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        async def worker(k: int) -> None:
            nonlocal sent
            for i in range(k, n, concurrency):
                body = mention(i)
                headers = {**slack_headers(body), "Content-Type": "application/json"}
                async with session.post(f"{url}/slack/events", data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status
                sent += 1

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--startups", type=int, default=5)
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--questions", type=int, default=2_000)
    args = parser.parse_args()
    print(f"bench_memory: {machine()}")
    slack = FakeSlackProcess()
    env = {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_API_URL": slack.api_url}
    try:
        # 1. start-up to ready
        ready, listening, rss = [], [], []
        for _ in range(args.startups):
            server = start_chinadesk(env)
            ready.append(server.ready_s)
            listening.append(server.started_s)
            rss.append(server.rss()["VmRSS"])
            server.stop()
        print(f"\nstart-up, spawn to first 200 from /readyz: {median_of(ready)}")
        print(f"  (spawn to listening: {median_of(listening)}; it listens only once ready)")
        print(f"  VmRSS when ready: median {statistics.median(rss):.0f} MiB (min {min(rss):.0f}, max {max(rss):.0f})")

        # 2. breakdown
        out = json.loads(subprocess.run([sys.executable, "-c", BREAKDOWN], capture_output=True, text=True,
                                        check=True, cwd=ROOT).stdout)
        print("\nwhere start-up goes (one fresh interpreter, steps as in create_app):")
        for (name, t, mib), (_, t0, mib0) in zip(out[1:], out[:-1], strict=True):
            print(f"  {name:<72} +{(t - t0) * 1000:6.0f} ms  +{mib - mib0:5.1f} MiB")
        print(f"  {'total after the interpreter':<72}  {(out[-1][1] - out[0][1]) * 1000:6.0f} ms   "
              f"{out[-1][2]:5.1f} MiB resident (interpreter alone {out[0][2]:.1f} MiB)")

        # 3. memory under load
        server = start_chinadesk(env)
        try:
            before = server.rss()
            phase = asyncio.run(closed_loop("commands", server, bodies(), args.commands, 50, True))
            seconds = asyncio.run(questions(server.url, args.questions))
            time.sleep(1.0)  # background answers finish
            after = server.rss()
        finally:
            stop_s = server.stop()
        print(f"\nload: {args.commands:,} slash commands ({phase.throughput:.0f} req/s) and {args.questions:,} "
              f"channel questions ({args.questions / seconds:.0f}/s, answered in the background)")
        print(f"  VmRSS after start-up {before['VmRSS']:.0f} MiB; after the load {after['VmRSS']:.0f} MiB "
              f"(peak VmHWM {after['VmHWM']:.0f} MiB); SIGTERM to exit {stop_s:.2f} s")
    finally:
        slack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
