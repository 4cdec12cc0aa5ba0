"""The Q&A index kept on disk between processes, keyed by a hash of everything it is built from.

Building :class:`~handlers.qa.index.QAIndex` analyses every fact of the packs (jieba, stemming, BM25):
about two seconds, which a long-running server pays once but ``chinadesk ask "a question"`` would pay on
every call. :func:`load_index` keeps the built index in a cache directory and loads it back (~0.1 s).

The key covers the packs (each topic's full content), the lexicon (``content/synonyms.yaml``), the
source of the retrieval code itself (``handlers/qa/*.py``, ``content/schema.py``) and the versions of
the libraries that shape the index, so editing a fact, a synonym or the code gives a new key and a
fresh build; no invalidation step can be forgotten. Files are written to a temporary name and moved
into place with ``os.replace``, so concurrent processes never read a half-written index.

The file is a pickle: only this cache directory (the user's own, see ``CHINADESK_CACHE_DIR``) is ever
read, never a file that came from elsewhere. The library's topics and facts are not copied into it but
referred to by position and re-linked on load, so a loaded index answers with the very objects of the
library it is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import pickle
import sys
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from content.loader import Library
from content.schema import Fact, Topic
from handlers.qa.index import QAIndex, _topic_docs
from handlers.qa.lexicon import Lexicon, default_lexicon
from handlers.qa.text import use_jieba_cache, write_atomic

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the file layout (not the index) changes
_SCHEMA = Path(__file__).parents[2] / "content" / "schema.py"
_LIBRARIES = ("bm25s", "numpy", "jieba", "snowballstemmer", "rapidfuzz", "pydantic")


def load_index(library: Library, cache_dir: str | os.PathLike[str] | None,
               lexicon: Lexicon | None = None) -> QAIndex:
    """The index for ``library``: loaded from ``cache_dir`` when it was built from the same content and
    code, else built (and saved there). ``cache_dir=None`` builds without a cache."""
    lexicon = lexicon or default_lexicon()
    if cache_dir is None:
        return QAIndex.build(library, lexicon)
    directory = Path(cache_dir)
    use_jieba_cache(directory)
    path = directory / f"qa-index-{index_key(library, lexicon)}.pickle"
    try:
        data = path.read_bytes()
    except OSError:
        data = None
    if data is not None:
        try:
            return _Unpickler(io.BytesIO(data), library, lexicon).load()
        except Exception as exc:  # a truncated or foreign file must never stop an answer: rebuild it
            log.warning("Q&A index cache %s unreadable (%s): rebuilding it", path, type(exc).__name__)
    index = QAIndex.build(library, lexicon)
    buffer = io.BytesIO()
    _Pickler(buffer, library, lexicon).dump(index)
    if write_atomic(path, buffer.getvalue()):
        _remove_others(directory, keep=path)
    return index


def index_key(library: Library, lexicon: Lexicon) -> str:
    """A hash of what the index is built from: content, lexicon, code and library versions."""
    h = hashlib.sha256(f"format {FORMAT}; python {sys.version_info[:2]}".encode())
    for name in _LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            h.update(f"{name} {importlib.metadata.version(name)}".encode())
    for path in sorted([*Path(__file__).parent.glob("*.py"), _SCHEMA]):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    for topic_id, topic in library.topics.items():
        h.update(topic_id.encode())
        h.update(topic.model_dump_json().encode())
    h.update(json.dumps(_plain(lexicon), ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()[:24]


def _plain(value: Any) -> Any:
    """The lexicon as JSON-able data in a fixed order (a frozenset's order changes with the hash seed)."""
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _facts(library: Library) -> Iterator[Fact]:
    for topic in library.topics.values():
        for _, _, fact in _topic_docs(topic):
            yield fact


class _Pickler(pickle.Pickler):
    """Pickles the index but refers to the library, its topics and facts, and the lexicon by name."""

    def __init__(self, file: io.BytesIO, library: Library, lexicon: Lexicon) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._library, self._lexicon = library, lexicon
        self._facts: dict[int, int] = {}
        for n, fact in enumerate(_facts(library)):
            self._facts.setdefault(id(fact), n)

    def persistent_id(self, obj: Any) -> Any:
        if obj is self._library:
            return ("library",)
        if obj is self._lexicon:
            return ("lexicon",)
        if isinstance(obj, Topic) and self._library.topics.get(obj.id) is obj:
            return ("topic", obj.id)
        if isinstance(obj, Fact) and id(obj) in self._facts:
            return ("fact", self._facts[id(obj)])
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, library: Library, lexicon: Lexicon) -> None:
        super().__init__(file)
        self._library, self._lexicon = library, lexicon
        self._facts: list[Fact] | None = None

    def persistent_load(self, pid: Any) -> Any:
        kind = pid[0]
        if kind == "library":
            return self._library
        if kind == "lexicon":
            return self._lexicon
        if kind == "topic":
            return self._library.topics[pid[1]]
        if kind == "fact":
            if self._facts is None:
                self._facts = list(_facts(self._library))
            return self._facts[pid[1]]
        raise pickle.UnpicklingError(f"unknown reference {pid!r}")


def _remove_others(directory: Path, keep: Path) -> None:
    """Indexes of older content or code are never read again: remove them (best effort)."""
    for other in directory.glob("qa-index-*.pickle"):
        if other != keep:
            with contextlib.suppress(OSError):
                other.unlink()
