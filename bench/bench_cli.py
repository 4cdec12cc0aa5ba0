"""Start-up of the command line: `chinadesk ask` cold and warm, against `python -c pass` in the same run.

Each figure is the wall time of a whole process, from spawn to exit, measured here with
``time.perf_counter`` around ``subprocess.run``:

* ``python -c pass``: the interpreter's own start-up (the floor no CLI can beat), with the same
  interpreter as ``chinadesk``;
* ``ask "/china-filing"`` (the menu: no Q&A index is needed) and ``ask "<a question>"`` (the index is
  needed), each **cold** (an empty ``CHINADESK_CACHE_DIR``: the Q&A index and jieba's dictionary are
  built and written) and **warm** (the cache written by the cold run is loaded).

Rounds alternate the commands so that a noisy neighbour slows them alike; medians and minimums are
printed with each figure's ratio to the baseline of the same run. Asserts nothing; not a test.

    .venv/bin/python bench/bench_cli.py            # ~2 min on an idle machine
    .venv/bin/python bench/bench_cli.py --rounds 3
    # the same figures for older code too, e.g. main before this change, in the same run:
    git archive <commit> | tar -x -C /tmp/before && .venv/bin/python bench/bench_cli.py --before /tmp/before
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHINADESK = shutil.which("chinadesk", path=str(Path(sys.executable).parent)) or shutil.which("chinadesk")
QUESTION = "how long does the facial recognition filing take?"
QUESTION_ZH = "人脸识别备案需要多久"


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one whole process. CPU time moves much less than wall
    time when other processes share the machine, so both are printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="runs of each figure (default 7)")
    parser.add_argument("--before", default=None, metavar="SRC",
                        help="also time `ask` with the code in SRC (a checkout of older code; same interpreter)")
    args = parser.parse_args()
    if CHINADESK is None:
        raise SystemExit("no `chinadesk` script next to this interpreter: pip install -e . first")

    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    base_env = {**os.environ, "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}", "PYTHONDONTWRITEBYTECODE": ""}
    for name in [k for k in base_env if k.startswith(("SLACK_", "MICROSOFT_APP"))]:
        del base_env[name]  # the CLI on its defaults: no platform configured
    figures: dict[str, list[tuple[float, float]]] = {}
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        'ask "/china-filing"': [CHINADESK, "ask", "/china-filing"],
        f'ask "{QUESTION}"': [CHINADESK, "ask", QUESTION],
        f'ask "{QUESTION_ZH}"': [CHINADESK, "ask", QUESTION_ZH],
    }
    if args.before:
        # The older code first on sys.path (before the editable install's finder), run as its console script.
        run_src = (f"import sys; sys.path.insert(0, {str(Path(args.before).resolve())!r}); "
                   "from bot.cli import main; sys.exit(main())")
        commands['before: ask "/china-filing"'] = [sys.executable, "-c", run_src, "ask", "/china-filing"]
        commands[f'before: ask "{QUESTION}"'] = [sys.executable, "-c", run_src, "ask", QUESTION]
    try:
        # One unrecorded run of each: the .pyc files and the OS file cache are warm for every figure.
        for argv in commands.values():
            timed(argv, {**base_env, "CHINADESK_CACHE_DIR": str(work / "unrecorded")}, work)
        for r in range(args.rounds):
            for name, argv in commands.items():
                if name.startswith("python"):
                    figures.setdefault(name, []).append(timed(argv, base_env, work))
                    continue
                cache = work / f"cache-{r}-{len(figures)}"
                env = {**base_env, "CHINADESK_CACHE_DIR": str(cache)}
                figures.setdefault(f"{name}, cold", []).append(timed(argv, env, work))  # empty cache dir
                figures.setdefault(f"{name}, warm", []).append(timed(argv, env, work))  # what the cold run wrote
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(w for w, _ in figures["python -c pass"])
    base_cpu = statistics.median(c for _, c in figures["python -c pass"])
    print(f"{len(figures['python -c pass'])} rounds; {sys.executable} (Python {sys.version.split()[0]}); "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    print(f"{'process':<72} {'wall median':>11} {'min':>7} {'x base':>7} {'CPU median':>11} {'x base':>7}")
    for name, runs in figures.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:<72} {wall:>10.3f}s {min(w for w, _ in runs):>6.3f}s {wall / base:>6.1f}x "
              f"{cpu:>10.3f}s {cpu / base_cpu:>6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
