"""Text analysis, identical for facts and questions: folding, numbers, stemming, Chinese segmentation.

NFKC + case-folding, numbers normalised (``100k`` = ``100,000`` = ``10万``), English stemmed (Snowball),
Chinese segmented with jieba (its common words, plus the packs' own Chinese words so that ``小红书``
stays whole), stop words kept apart. Also the cue patterns (``how long does * take``) intents use.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import marshal
import os
import re
import sys
import tempfile
import types
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import snowballstemmer
from rapidfuzz import fuzz

if TYPE_CHECKING:
    import jieba

    from handlers.qa.lexicon import Lexicon

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(k|m|mn|bn|thousand|million|billion|万|亿)?(?![a-z])"
)
_MULTIPLIER = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9,
               "万": 1e4, "亿": 1e8}
_WORD = re.compile(rf"[{_CJK}]+|[a-z0-9]+(?:[-.'’&][a-z0-9]+)*")
# A Chinese word that begins with an interrogative (几年, 几级, 哪一年, 多少人, 什么样) is the question's form, as
# "how many" or "which year" is in English, not a word of what is asked about.
_ZH_QUESTION_FORM = re.compile("^(?:几|哪|多少|什么|怎么|怎样|如何|多久|多长|为什么|为何|是否)")
QUESTION_MARK = re.compile(r"[?？]")
# A small count and its measure word ("两份", "两项", "三个"): how a sentence counts things, not what they are.
_ZH_COUNT = re.compile("^[一二两三四五六七八九十]{1,2}[个份项条种类款位次件]$")

# ------------------------------------------------------------------------------------------ analysis


_US = re.compile(r"(?<![A-Za-z])U\.?S\.?A?(?![A-Za-z])")


def fold(text: str) -> str:
    # "US" the country, not "us" the pronoun: only the capitalised form is kept apart before case-folding.
    text = _US.sub(" usa ", unicodedata.normalize("NFKC", text))
    return text.casefold().strip()


def _number(match: re.Match[str]) -> str:
    value = float(match[1].replace(",", "")) * _MULTIPLIER.get(match[2] or "", 1)
    text = str(int(value)) if value == int(value) else match[1]
    return f" {text} "


def normalise_numbers(text: str) -> str:
    """``100k``, ``100,000`` and ``10万`` all become ``100000`` so that they match one another."""
    return _NUMBER.sub(_number, text)


def has_cjk(text: str) -> bool:
    return bool(_CJK_RE.search(text))


_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball stem for English words; numbers, short words and Chinese pass through."""
    if len(word) > 3 and word.isascii() and word.isalpha():
        return _STEMMER.stemWord(word)
    return word


# jieba's dictionary holds 349,000 words, most of them rare (frequency under 10) and in no question about
# China market entry; loading it all takes about half a second, a third of start-up. The words of the
# packs and of content/synonyms.yaml are added on top, and jieba's HMM still segments words it lacks.
_JIEBA_LINE = re.compile(rb"^[^ \n]+ [1-9][0-9]+(?: [^\n]*)?$", re.M)  # "word freq [tag]" with freq >= 10


_jieba_cache_dir: Path | None = None  # see use_jieba_cache


def use_jieba_cache(directory: str | os.PathLike[str] | None) -> None:
    """Keep jieba's (trimmed) dictionary in ``directory`` between processes: loading it back is about half
    the work of parsing ``dict.txt``. Call before the first Chinese text is analysed."""
    global _jieba_cache_dir
    _jieba_cache_dir = Path(directory) if directory else None


def _import_jieba() -> types.ModuleType:
    """``import jieba`` without letting it import ``pkg_resources``: jieba 0.42 uses it only to open its own
    data files, and opens them by path when it is missing. pkg_resources scans every installed
    distribution on import: 12 MiB of resident memory and ~0.15 s that nothing else here needs. (When
    something has already imported it, there is nothing left to save and jieba gets it as usual.)"""
    if "jieba" in sys.modules:
        return sys.modules["jieba"]
    hide = "pkg_resources" not in sys.modules
    if hide:
        sys.modules["pkg_resources"] = None  # type: ignore[assignment]  # makes `import pkg_resources` fail
    try:
        import jieba
    finally:
        if hide and sys.modules.get("pkg_resources", False) is None:
            del sys.modules["pkg_resources"]
    return jieba


@functools.lru_cache(maxsize=1)
def base_jieba() -> jieba.Tokenizer:
    # One dictionary load per process; own instance so that our added words do not change segmentation
    # for any other code using the global jieba. Imported here, not at the top: jieba (and the
    # pkg_resources it imports) costs a quarter of a second that English questions and commands never need.
    jieba = _import_jieba()

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    dict_path = Path(jieba.__file__).with_name("dict.txt")
    try:
        stat = dict_path.stat()
    except OSError:  # an unusual install: jieba's own loader finds (and caches) its dictionary
        tokenizer.initialize()
        return tokenizer
    cached = None
    if _jieba_cache_dir is not None:
        # Keyed by the dictionary file, the filter and jieba's version: any change makes a new file.
        key = hashlib.sha256(repr((str(dict_path), stat.st_size, stat.st_mtime_ns, _JIEBA_LINE.pattern,
                                   getattr(jieba, "__version__", ""))).encode()).hexdigest()[:16]
        cached = _jieba_cache_dir / f"jieba-{key}.marshal"
        try:
            tokenizer.FREQ, tokenizer.total = marshal.loads(cached.read_bytes())
            tokenizer.initialized = True
            return tokenizer
        except (OSError, EOFError, ValueError, TypeError):
            pass  # not there yet, or unreadable: build it and (try to) write it
    data = dict_path.read_bytes()
    tokenizer.FREQ, tokenizer.total = tokenizer.gen_pfdict(io.BytesIO(b"\n".join(_JIEBA_LINE.findall(data))))
    tokenizer.initialized = True
    if cached is not None:
        write_atomic(cached, marshal.dumps((tokenizer.FREQ, tokenizer.total)))
    return tokenizer


def write_atomic(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``: a concurrent reader sees the
    old file or the whole new one, never half of it; two writers both write whole files. A cache that cannot
    be written (read-only home, full disk) is only slower, so failures are swallowed (returns False)."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name + ".", suffix=".tmp", delete=False) as f:
            tmp = f.name
            f.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False


class Analyzer:
    """Text -> words -> index tokens, identical for facts and questions."""

    def __init__(self, lexicon: Lexicon, cjk_words: Iterable[str] = ()) -> None:
        self.lexicon = lexicon
        self.stopwords = lexicon.stopwords
        # Interrogative words that editors put in a synonym group ("多少钱": a fee) keep their meaning.
        self.cjk_members = frozenset(fold(m) for g in lexicon.synonyms for m in g if has_cjk(m))
        # The packs' own Chinese words, added to jieba when it is first needed (a question in English,
        # answered from a cached index, never loads jieba's dictionary).
        self.cjk_words = tuple(w for w in sorted(set(cjk_words)) if has_cjk(w) and len(w) > 1 and " " not in w)
        self._jieba: jieba.Tokenizer | None = None
        # The frequency jieba suggested for each added word (it segments the word to find one: the slow part
        # of adding words), kept so that an index loaded from the disk cache adds them without asking again.
        self._cjk_freqs: dict[str, int] | None = None

    @property
    def jieba(self) -> jieba.Tokenizer:
        if self._jieba is None:
            tokenizer = base_jieba()
            if self._cjk_freqs is None:
                freqs: dict[str, int] = {}
                for word in self.cjk_words:
                    tokenizer.add_word(word)
                    freqs[word] = tokenizer.FREQ[word]
                self._cjk_freqs = freqs
            else:
                for word, freq in self._cjk_freqs.items():
                    tokenizer.add_word(word, freq)
            self._jieba = tokenizer
        return self._jieba

    def __getstate__(self) -> dict:
        # Pickled (the on-disk index cache) without jieba's dictionary: it is loaded again when needed.
        return {**self.__dict__, "_jieba": None}

    def units(self, text: str) -> list[list[str]]:
        """Folded words in order, stop words included (callers need them to join ``we chat``).

        Each unit is one word as a person wrote it, with its alternative forms after it: a compound's
        parts (``non-personal`` -> ``nonpersonal``, ``non``, ``personal``), a Chinese word's shorter
        dictionary words (``人脸识别`` -> ``人脸``, ``识别``). A question counts a unit once.
        """
        text = normalise_numbers(fold(text))
        out: list[list[str]] = []
        for match in _WORD.finditer(text):
            w = match[0]
            if has_cjk(w):
                for word in self.jieba.cut(w, HMM=True):
                    if len(word) > 1 and word not in self.jieba.FREQ:
                        # A word jieba's HMM made up from characters that no dictionary (its own, nor the
                        # packs') holds ("什么情况下要" -> "下要"): its characters, not an unknown word.
                        out.extend([ch] for ch in word)
                        continue
                    if word.strip():
                        subs = [t for t in self.jieba.cut_for_search(word, HMM=True) if t != word and len(t) > 1]
                        out.append([word, *subs])
                continue
            if w in self.stopwords:
                out.append([w])
                continue
            w = re.split(r"['’]", w)[0]  # china's -> china
            parts = [p for p in re.split(r"[-.&]", w) if p]
            if len(parts) > 1 and all(p.isdigit() for p in parts):
                out.append([w])  # 11.11, 6.18: dates people use as names
            elif len(parts) > 1:
                out.append(["".join(parts), *parts])  # e-commerce: ecommerce, e, commerce
            elif parts:
                out.append(parts)
        return out

    def words(self, text: str) -> list[str]:
        return [w for unit in self.units(text) for w in unit]

    def keep(self, word: str) -> bool:
        if word in self.stopwords:
            return False
        if (_ZH_QUESTION_FORM.match(word) or _ZH_COUNT.match(word)) and word not in self.cjk_members:
            return False
        return not (len(word) == 1 and word.isascii() and not word.isdigit())

    def tokens(self, text: str) -> list[str]:
        return [self.stem(w) for w in self.words(text) if self.keep(w)]

    def phrase(self, text: str) -> tuple[str, ...]:
        """One token per unit, as a question's words are matched against names and synonyms."""
        return tuple(self.stem(unit[0]) for unit in self.units(text) if self.keep(unit[0]))

    def stem(self, word: str) -> str:
        # Protected words are acronyms the stemmer would turn into other words (VATS -> vat).
        return word if word in self.lexicon.protected else stem(word)



def substitution(a: str, b: str) -> bool:
    """``b`` is ``a`` with one letter replaced: in a short word that is as likely another real word
    ("patent" / "parent", "policy" / "police") as a typo, so it is not corrected. Swapped, missing or
    doubled letters ("facail", "xiaohngshu") are typos."""
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


def similar(a: str, b: str) -> bool:
    """Near-duplicate fact texts (same words, slightly different order or wording)."""
    return fuzz.token_set_ratio(a, b) >= 85


@functools.lru_cache(maxsize=4096)
def cue_pattern(cue: str) -> re.Pattern[str]:
    """A cue as a regex: whole words in English, a substring in Chinese; ``*`` stands for a few words
    ("how long does * take")."""
    if has_cjk(cue):
        return re.compile(re.escape(cue).replace(r"\*", ".{0,12}?"))
    body = r"(?:\s+\S+){1,5}?\s+".join(re.escape(part.strip()) for part in cue.split("*"))
    return re.compile(rf"(?<![a-z0-9]){body}(?![a-z0-9])")


def has_cue(text: str, cue: str) -> bool:
    return cue_pattern(cue).search(text) is not None




# ------------------------------------------------------------------------------------- tags and filler

# Mentions of people and groups as each surface writes them: Slack markup (<@U1>, <@U1|alice>, <!here>,
# <!subteam^S1|@team>, <#C1|general>), Teams (<at>Alice</at>), and the plain @name they become once
# converted to text. An address is not part of a question: it must never change the answer.
_TAGS = re.compile(
    r"<[@!#][^<>]*>"  # Slack markup
    r"|<at\b[^>]*>.*?</at>"  # Teams mention entities
    r"|(?<![\w@.])@[\w.\-^|]*\w",  # @alice, @U07ALICE, @china-team, @channel (not mail@example.com)
    re.IGNORECASE | re.DOTALL,
)
# Greetings and sign-offs at either end of a message, in English and Chinese: words around a question
# that are not part of it. Only at the ends, so that "thanks" inside a sentence stays a word.
_GREETING = (r"(?:hi|hey|hello|hiya|yo|morning|good (?:morning|afternoon|evening)|dear)(?: (?:all|team|guys|folks|"
             r"everyone|there|both|y'?all))?|quick (?:q|question)|qq|fyi|cc")
_SIGN_OFF = (r"(?:thanks|thank you|thx|ty|tia|cheers|many thanks|thanks in advance|much appreciated|"
             r"appreciated|pls|please|cc)(?: (?:all|team|guys|folks|everyone|so much|a lot|in advance))?")
_GREETING_ZH = "你好|您好|大家好|哈喽|嗨|请问|麻烦问一下|麻烦问下|麻烦|打扰一下|打扰了"
_SIGN_OFF_ZH = "谢谢(?:大家|你|您)?|多谢|感谢|麻烦了|辛苦了|谢啦"
_LEADING = re.compile(rf"^\s*(?:(?:{_GREETING})\b[\s,.!:;，。！：、~-]*)+", re.IGNORECASE)
_TRAILING = re.compile(rf"(?:[\s,.!:;，。！：、~-]*\b(?:{_SIGN_OFF}))+[\s,.!。！~:)]*$", re.IGNORECASE)
_CJK_EDGE_LEAD = re.compile(rf"^\s*(?:(?:{_GREETING_ZH})[\s,.!:;，。！：、~-]*)+")
_CJK_EDGE_TRAIL = re.compile(rf"(?:[\s,.!:;，。！：、~-]*(?:{_SIGN_OFF_ZH}))+[\s,.!。！~]*$")


def strip_chatter(text: str) -> str:
    """The question without tags (people, groups, channels) and without greetings and sign-offs.

    ``<@U07ALICE> hi, what is xhs? thanks!`` and ``what is xhs?`` are the same question: every surface and
    the CLI see the same words once this has run, so a tagged question gets exactly the untagged reply.
    """
    text = _TAGS.sub(" ", text)
    text = " ".join(text.split())
    for _ in range(2):  # "hi @bob, quick q:" leaves "quick q:" after the first pass
        text = _LEADING.sub("", text)
        text = _CJK_EDGE_LEAD.sub("", text)
        text = _TRAILING.sub("", text)
        text = _CJK_EDGE_TRAIL.sub("", text)
    return text.strip(" ,:;，：、-")
