"""What scrubbing secrets from every log line costs: microseconds per record, with and without the filter.

The production handler (``configure_logging("INFO", "json")``) formats each record as JSON; since issue 11
it also runs :class:`bot.observability.SecretFilter` on it. This writes the same records through that
handler to a null stream, with the filter and without it (the baseline, measured in the same run), for
the request log line every answer writes and for a DEBUG-style line with a library's response body.

    .venv/bin/python bench/bench_logging.py [--records 20000] [--rounds 5]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.observability import SecretFilter, configure_logging

ENV = {"SLACK_SIGNING_SECRET": "bench-signing-secret-0123456789abcdef", "SLACK_BOT_TOKEN": "xoxb-1-2-bench",
       "DATABASE_URL": "postgresql://chinadesk:hunter2@db/prod"}
ANSWERED = ("answered", {"platform": "slack", "command": "/china-filing", "kind": "deadline", "mode": "command",
                         "chars": 42, "ms": 0.83})
DEBUG_BODY = ("Received the following response - status: 200, body: %s", {"ok": True, "access_token": "xoxb-9-9-x",
              "team": {"id": "T0ACME", "name": "Acme Ltd"}, "scope": "commands,chat:write" * 4})


def per_record_us(handler: logging.Handler, n: int, debug: bool) -> float:
    log = logging.getLogger("bench.logging")
    started = time.perf_counter()
    for _ in range(n):
        if debug:
            record = log.makeRecord(log.name, logging.DEBUG, __file__, 1, DEBUG_BODY[0], (DEBUG_BODY[1],), None)
        else:
            record = log.makeRecord(log.name, logging.INFO, __file__, 1, ANSWERED[0], (), None, extra=ANSWERED[1])
        handler.handle(record)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    configure_logging("INFO", "json", env=ENV)
    scrubbing = logging.getLogger().handlers[0]
    scrubbing.setStream(io.StringIO())
    bare = logging.StreamHandler(io.StringIO())  # the same formatter and filters, minus the SecretFilter
    bare.setFormatter(scrubbing.formatter)
    for f in scrubbing.filters:
        if not isinstance(f, SecretFilter):
            bare.addFilter(f)

    print(f"{args.rounds} rounds of {args.records:,} records each; median µs per record")
    for name, debug in (("request log line (INFO)", False), ("library response body (DEBUG)", True)):
        with_filter, without = [], []
        for _ in range(args.rounds):
            without.append(per_record_us(bare, args.records, debug))
            with_filter.append(per_record_us(scrubbing, args.records, debug))
        base, scrub = statistics.median(without), statistics.median(with_filter)
        print(f"  {name:<32} without filter {base:6.2f} µs   with filter {scrub:6.2f} µs   ratio {scrub / base:4.2f}")


if __name__ == "__main__":
    main()
