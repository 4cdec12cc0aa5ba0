"""Channel Q&A benchmarks and calibration. Prints figures; asserts nothing (not a timed test).

    python bench/bench_qa.py                 # latency: real packs, then 10x and 100x with filler topics
    python bench/bench_qa.py --scales 1 10   # fewer sizes
    python bench/bench_qa.py --calibrate     # fit the confidence model on half 1, check it on half 2
    python bench/bench_qa.py --calibrate --fit-on all   # the final model, fitted on both halves
    python bench/bench_qa.py --calibrate --exclude qa_blind.yaml:2   # keep a blind half out entirely
    python bench/bench_qa.py --semantic --repeat 2   # the optional re-ranker (QA_SEMANTIC): latency, memory

Calibration uses every question set: tests/qa_questions.yaml, tests/qa_blind*.yaml and the public dev
set (shared/dev_questions.yaml), each split into its two halves (even / odd positions).

Latency is per question over every question of tests/qa_questions.yaml, through the whole handler
chain (``Desk.handle``: analysis, retrieval, confidence, template rendering), after the index is built.
It is reported next to a baseline measured in the same run on the same corpus: a bare ``bm25s`` query
(its own tokenizer, English stop words, top 3) over the fact texts, so the ratio says what the domain
work (fields, synonyms, typo correction, intents, rendering) costs on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import string
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bm25s  # noqa: E402

from content.loader import Library, load_library  # noqa: E402
from content.schema import SECTION_LABELS, Fact, Topic  # noqa: E402
from handlers import (  # noqa: E402
    Desk,
    Request,
    qa,
)

QUESTIONS = ROOT / "tests" / "qa_questions.yaml"
DEV_SET = ROOT.parent / "shared" / "dev_questions.yaml"


# ------------------------------------------------------------------------------------------ corpus


def filler_library(base: Library, factor: int, seed: int = 7) -> Library:
    """The real library plus (factor - 1) times as many topics of random vocabulary."""
    if factor <= 1:
        return base
    rng = random.Random(seed)
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10))) for _ in range(30_000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf-like, as real text is

    def sentence(n: int) -> str:
        return " ".join(rng.choices(vocab, weights=weights, k=n)).capitalize() + "."

    topics = dict(base.topics)
    topic_pack = dict(base.topic_pack)
    real = list(base.topics.values())
    for i in range((factor - 1) * len(real)):
        model = real[i % len(real)]
        pack = base.topic_pack[model.id]
        source = model.summary.source
        as_of = model.summary.as_of

        def fact(_source: str = source, _as_of=as_of) -> Fact:
            return Fact(text=sentence(rng.randint(15, 35)), source=_source, as_of=_as_of,
                        keywords=rng.choices(vocab, k=3))

        # As many facts per section as the real topic it stands in for, so 100x topics is ~100x facts.
        sections = {s: [fact() for _ in facts] for s, facts in model.sections.items()}
        sections.setdefault(list(SECTION_LABELS[model.kind])[1], [fact()])
        sections.setdefault("background", []).extend(fact() for _ in range(len(model.all_facts()) - 1 - sum(
            len(f) for f in model.sections.values())))
        tid = f"filler-{i}"
        topics[tid] = Topic(id=tid, kind=model.kind, title=sentence(3)[:-1], aliases=[f"filler {i}", vocab[i]],
                            summary=fact(), sections=sections)
        topic_pack[tid] = pack
    return Library(packs=base.packs, topics=topics, topic_pack=topic_pack, root=base.root,
                   templates_dir=base.templates_dir)


# ----------------------------------------------------------------------------------------- latency


def percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def bench_scale(base: Library, factor: int, questions: list[str], repeat: int) -> None:
    library = filler_library(base, factor)
    n_facts = sum(len(t.all_facts()) for t in library.topics.values())
    t0 = time.perf_counter()
    index = qa.QAIndex.build(library)
    build = time.perf_counter() - t0
    desk = Desk(library=library, qa=index)

    # Baseline: bare bm25s on the fact texts, same questions.
    texts = [f.text for t in library.topics.values() for _, f in t.all_facts()]
    t0 = time.perf_counter()
    baseline = bm25s.BM25()
    baseline.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    baseline_build = time.perf_counter() - t0

    base_times, ours, match_only = [], [], []
    loop = asyncio.new_event_loop()
    for _ in range(repeat):
        for q in questions:
            t0 = time.perf_counter()
            tokens = bm25s.tokenize([q], stopwords="en", show_progress=False)
            if tokens.vocab:  # bm25s cannot query with no known token
                baseline.retrieve(tokens, k=3, show_progress=False)
            base_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.match(q)
            match_only.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            loop.run_until_complete(desk.handle(Request(text=q, mode="direct")))
            ours.append(time.perf_counter() - t0)
    loop.close()
    b50, b99 = percentiles(base_times)
    m50, m99 = percentiles(match_only)
    o50, o99 = percentiles(ours)
    print(f"\n{factor}x corpus: {len(library.topics)} topics, {n_facts} facts; index build {build:.2f} s "
          f"(bare bm25s index {baseline_build:.2f} s)")
    print(f"  bare bm25s query     p50 {b50:6.2f} ms  p99 {b99:6.2f} ms")
    for name, p50, p99 in (("QAIndex.match       ", m50, m99), ("full answer (handle)", o50, o99)):
        print(f"  {name} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
              f"({p50 / b50:4.1f}x / {p99 / b99:4.1f}x the baseline's p50 / p99)")


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def bench_semantic(base: Library, questions: list[str], repeat: int, cache_dir: str) -> None:
    """The optional re-ranker (QA_SEMANTIC): per-question latency through ``Desk.handle`` with it off and on, in
    the same run (passes alternate), the extra resident memory, and the embeddings' one-time build."""
    from handlers.qa.cache import load_index
    from handlers.qa.semantic import load_semantic

    index = load_index(base, cache_dir)
    lexical = Desk(library=base, qa=index, settings={"qa_semantic": "off"})
    loop = asyncio.new_event_loop()
    for q in questions:  # warm: jieba's dictionary, templates
        loop.run_until_complete(lexical.handle(Request(text=q, mode="direct")))
    before = rss_mib()
    t0 = time.perf_counter()
    semantic = load_semantic(index, cache_dir)
    if semantic is None:
        print("embeddings not in the cache: building them once (minutes)")
        t0 = time.perf_counter()
        semantic = load_semantic(index, cache_dir, build=True)
        print(f"  one-time build: {time.perf_counter() - t0:.1f} s")
    else:
        semantic.embedder.query("warm up")
        print(f"embeddings loaded from the cache and the model ready in {time.perf_counter() - t0:.2f} s")
    on = Desk(library=base, qa=index, settings={"qa_semantic": "on"}, semantic=semantic)
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(repeat):
        for name, desk in (("off", lexical), ("on", on)):
            for q in questions:
                t0 = time.perf_counter()
                loop.run_until_complete(desk.handle(Request(text=q, mode="direct")))
                times[name].append(time.perf_counter() - t0)
    loop.close()
    after = rss_mib()
    unsure = sum(index.match(q).confidence < qa.ANSWER_BAR for q in questions)
    print(f"{len(questions)} questions, {unsure} below the answer bar (each of those embeds the question once)")
    for name in ("off", "on"):
        p50, p99 = percentiles(times[name])
        print(f"  QA_SEMANTIC={name:3s} full answer p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max "
              f"{max(times[name]) * 1000:6.1f} ms")
    print(f"  resident memory: {before:.0f} MiB lexical, {after:.0f} MiB with the re-ranker "
          f"(+{after - before:.0f} MiB)")


# ------------------------------------------------------------------------------------- calibration


# Coefficients set from domain knowledge rather than fitted: a question about another jurisdiction
# (GDPR fines in France) answered by facts that never mention it is wrong, however well the rest of
# the words match, and the question sets hold too few such cases to learn that weight.
FIXED = {"elsewhere": -4.0, "other_year": -4.0, "no_duration": -4.0, "no_amount": -4.0, "in_passing": -6.0}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.5, steps: int = 50,
                 fixed: dict[int, float] | None = None) -> np.ndarray:
    """Newton's method for L2-regularised logistic regression (first column is the bias, unpenalised);
    ``fixed`` columns keep the given coefficient."""
    fixed = fixed or {}
    free = [j for j in range(x.shape[1]) if j not in fixed]
    offset = sum((x[:, j] * v for j, v in fixed.items()), np.zeros(x.shape[0]))
    xf = x[:, free]
    w = np.zeros(len(free))
    penalty = np.full(len(free), l2)
    penalty[0] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(xf @ w + offset)))
        grad = xf.T @ (p - y) + penalty * w
        hess = (xf.T * (p * (1 - p))) @ xf + np.diag(penalty) + 1e-9 * np.eye(len(free))
        w -= np.linalg.solve(hess, grad)
    out = np.zeros(x.shape[1])
    out[free] = w
    for j, v in fixed.items():
        out[j] = v
    return out


def collect(desk: Desk, items: list[qa.EvalItem]) -> tuple[np.ndarray, np.ndarray]:
    index = qa.qa_index(desk)
    rows, labels = [], []
    today = Request(text="").today()
    for item in items:
        match = index.match(item.question)
        right = False
        if item.answerable and match.docs:
            right = qa.patterns_match(item, qa.answer_reply(desk.library, match, today=today).text)
        rows.append([1.0] + [match.features.get(name, 0.0) for name in qa.CONFIDENCE_FEATURES])
        labels.append(float(right))
    return np.asarray(rows), np.asarray(labels)


def report_fit(name: str, x: np.ndarray, y: np.ndarray, items: list[qa.EvalItem], w: np.ndarray) -> None:
    p = 1 / (1 + np.exp(-x @ w))
    answerable = np.asarray([it.answerable for it in items])
    answered = p >= qa.ANSWER_BAR
    acc = float(np.mean((answered & (y == 1))[answerable])) if answerable.any() else 1.0
    abst = float(np.mean(~answered[~answerable])) if (~answerable).any() else 1.0
    top_right = float(np.mean(y[answerable])) if answerable.any() else 1.0
    brier = float(np.mean((p - y) ** 2))
    print(f"{name}: {len(items)} questions; top fact right {top_right:.1%} of answerable; at bar "
          f"{qa.ANSWER_BAR}: answered right {acc:.1%}, out-of-scope abstained {abst:.1%}; Brier {brier:.3f}")
    for lo in np.arange(0, 1, 0.2):
        hi = lo + 0.2
        inside = (p >= lo) & ((p < hi) | (hi >= 1))
        if inside.any():
            print(f"  confidence {lo:.1f}-{hi:.1f}: n={int(inside.sum()):3d}  mean {p[inside].mean():.2f}  "
                  f"right {y[inside].mean():.2f}")
    oos_max = float(p[~answerable].max()) if (~answerable).any() else 0.0
    print(f"  highest out-of-scope confidence {oos_max:.2f}; lowest right-answer confidence "
          f"{float(p[(y == 1)].min()) if (y == 1).any() else 0:.2f}")


def calibration_sets(exclude: tuple[str, ...] = ()) -> dict[str, list[qa.EvalItem]]:
    """Every question set there is (ours, the blind batches, the tuning batches, the public dev set); ``exclude`` names
    sets, or halves of sets ("qa_blind.yaml:2"), kept out while they are held out."""
    paths = [QUESTIONS, *sorted((ROOT / "tests").glob("qa_blind*.yaml")),
             *sorted((ROOT / "tests").glob("qa_tuning_*.yaml"))]
    if DEV_SET.exists():
        paths.append(DEV_SET)
    out: dict[str, list[qa.EvalItem]] = {}
    for path in paths:
        # Single questions only: follow-ups and deadlines are scored with their conversation, not alone.
        items = [it for it in qa.load_questions(path) if it.category in ("answerable", "out_of_scope")]
        for which in (1, 2):
            name = f"{path.name}:{which}"
            if path.name not in exclude and name not in exclude:
                out[name] = qa.half(items, which)
    return out


def calibrate(l2: float, fit_on: str, exclude: tuple[str, ...] = ()) -> None:
    """Fit on half 1 of every set and report on half 2 of every set (or fit on everything)."""
    desk = Desk(library=load_library())
    sets = calibration_sets(exclude)
    tune = [it for name, items in sets.items() if name.endswith(":1") for it in items]
    check = [it for name, items in sets.items() if name.endswith(":2") for it in items]
    print("sets:", ", ".join(f"{name} ({len(items)})" for name, items in sets.items()))
    xt, yt = collect(desk, tune)
    xc, yc = collect(desk, check)
    names = ("bias", *qa.CONFIDENCE_FEATURES)
    xf, yf = (xt, yt) if fit_on == "half1" else (np.vstack([xt, xc]), np.concatenate([yt, yc]))
    w = fit_logistic(xf, yf, l2=l2, fixed={names.index(k): v for k, v in FIXED.items()})
    fitted = "{" + ", ".join(f'"{n}": {v:.2f}' for n, v in zip(names, w, strict=True)) + "}"
    print(f"Fitted on {'half 1 of every set' if fit_on == 'half1' else 'every set'}: {fitted}")
    current = np.asarray([qa.CONFIDENCE_COEF[n] for n in names])
    for label, coef in (("fitted", w), ("in handlers/qa.py", current)):
        print(f"\n-- coefficients {label}")
        report_fit("half 1 (tuning)", xt, yt, tune, coef)
        report_fit("half 2 (checking)", xc, yc, check, coef)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="*", default=[1, 10, 100])
    parser.add_argument("--repeat", type=int, default=3, help="passes over the question set per scale")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--l2", type=float, default=0.5, help="regularisation of the calibration fit")
    parser.add_argument("--fit-on", choices=["half1", "all"], default="half1",
                        help="fit on the tuning half (to check on half 2), or on everything (final model)")
    parser.add_argument("--exclude", nargs="*", default=[],
                        help="sets or halves held out of calibration, e.g. qa_blind.yaml:2")
    parser.add_argument("--semantic", action="store_true",
                        help="the optional re-ranker: latency off/on on the real packs, memory, embeddings build")
    args = parser.parse_args()
    if args.semantic:
        from bot.config import Settings

        questions = [it.question for it in qa.load_questions(QUESTIONS)]
        bench_semantic(load_library(), questions, args.repeat, Settings.from_env(platforms=False).store.cache_dir)
        return
    if args.calibrate:
        calibrate(args.l2, args.fit_on, tuple(args.exclude))
        return
    base = load_library()
    questions = [it.question for it in qa.load_questions(QUESTIONS)]
    print(f"{len(questions)} questions from {QUESTIONS.relative_to(ROOT)}, {args.repeat} passes per scale")
    for factor in args.scales:
        bench_scale(base, factor, questions, args.repeat)


if __name__ == "__main__":
    main()
