"""Which platforms this process can post to: the one place that imports the platform deliverers.

The scheduler (:mod:`bot.scheduler`) owns the registry (``register_deliverer``) and knows no platform;
each platform's delivery module registers itself on import. This module imports them, builds the
deliverers the environment configures, and runs the ``chinadesk worker`` loop. Arrows point one way:
platforms -> bot.slack.delivery / bot.teams.engine -> scheduler.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections.abc import Mapping
from typing import IO, Any

from bot.scheduler import DELIVERER_FACTORIES, Deliverer, Scheduler, TextDeliverer
from bot.store import Store

log = logging.getLogger("chinadesk.scheduler")

# A platform's delivery module, imported for its ``register_deliverer`` call. Add a platform here.
DELIVERY_MODULES: tuple[str, ...] = ("bot.slack.delivery", "bot.teams.engine")


def load_deliverers() -> None:
    """Import every platform's delivery module (each registers with the scheduler); a platform whose
    SDK is absent or broken is skipped: its posts wait for a process that has it."""
    for name in DELIVERY_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:
            log.debug("no deliverer from %s: %s", name, exc)


def build_deliverers(store: Store, env: Mapping[str, str] | None = None) -> dict[str, Deliverer]:
    """Every deliverer this process is configured for."""
    env = os.environ if env is None else env
    load_deliverers()
    out: dict[str, Deliverer] = {}
    for platform, factory in DELIVERER_FACTORIES.items():
        deliverer = factory(store, env)
        if deliverer is not None:
            out[platform] = deliverer
    return out


def build_scheduler(store: Store, desk: Any, *, env: Mapping[str, str] | None = None,
                    text_stream: IO[str] | None = None, **options: Any) -> Scheduler:
    """A scheduler with every deliverer configured in ``env``; ``text_stream`` prints text-platform posts."""
    deliverers = build_deliverers(store, env)
    if text_stream is not None:
        deliverers["text"] = TextDeliverer(text_stream)
    return Scheduler(store, desk, deliverers, **options)



async def run_worker(store: Store, desk: Any, *, interval: float = 30.0, env: Mapping[str, str] | None = None,
                     stop_grace: float = 60.0) -> None:
    """``chinadesk worker``: the scheduler loop until SIGTERM/SIGINT, then a clean stop (the pass in
    flight gets ``stop_grace`` seconds to finish; what it had not posted is re-offered after the lease)."""
    import signal

    from bot.observability import READY  # chinadesk_ready on `worker --metrics-port`

    scheduler = build_scheduler(store, desk, env=env, interval=interval)
    if not scheduler.deliverers:
        log.warning("no deliverers configured (SLACK_BOT_TOKEN, MICROSOFT_APP_ID...): nothing will be posted")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not on this platform / not the main thread
            pass
    await scheduler.start()
    READY.set(1)
    log.info("reminder worker started", extra={"platforms": sorted(scheduler.deliverers), "interval": interval})
    try:
        await stop.wait()
    finally:
        READY.set(0)  # draining from the signal on
        await scheduler.stop(stop_grace)
        log.info("reminder worker stopped")


