"""BM25 fields: one ``bm25s`` index per field of the facts (text, keywords...) or topics (names, whole text),
scored for a question given as concepts (see :meth:`Field.scores`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np


@dataclass
class Field:
    bm25: bm25s.BM25
    weight: float

    def scores(self, concepts: Sequence[dict[str, float]], size: int) -> np.ndarray:
        """BM25 of a question given as concepts, each a set of alternative tokens with weights.

        A concept contributes its *best* form, not the sum of them: a fact that says "application",
        "registration" and "filed" answers "filing" once, not three times (synonym groups are long).
        """
        out = np.zeros(size, dtype=np.float32)
        vocab = self.bm25.vocab_dict
        data, indices, indptr = (self.bm25.scores[k] for k in ("data", "indices", "indptr"))
        for forms in concepts:
            ids = [(vocab[t], w) for t, w in forms.items() if t in vocab]
            if len(ids) == 1:
                tid, w = ids[0]
                sl = slice(indptr[tid], indptr[tid + 1])
                out[indices[sl]] += w * data[sl]
            elif ids:
                best = np.zeros(size, dtype=np.float32)
                for tid, w in ids:
                    sl = slice(indptr[tid], indptr[tid + 1])
                    idx = indices[sl]
                    best[idx] = np.maximum(best[idx], w * data[sl])
                out += best
        return out


def bm25_field(corpus: list[list[str]]) -> bm25s.BM25:
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    # bm25s needs at least one token overall; an empty field of one document is fine.
    retriever.index(corpus if any(corpus) else [["\x00"]], show_progress=False)
    return retriever
