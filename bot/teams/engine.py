"""Which SDK carries Teams: ``TEAMS_ENGINE=agents`` (the Microsoft 365 Agents SDK, the default) or
``botbuilder`` (deprecated: botbuilder-python's support ended on 31 December 2025 and its repository is
archived; kept for one release behind the ``[botbuilder]`` extra). Both serve the same ``POST
/api/messages`` contract and the same reminder delivery; only the chosen SDK is imported."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bot.config import ConfigError, Settings, TeamsSettings
from bot.teams.common import PLATFORM, TEAMS_KEY

log = logging.getLogger("chinadesk.teams")

BOTBUILDER_MISSING = ("TEAMS_ENGINE=botbuilder needs the deprecated botbuilder packages: "
                      "pip install 'chinadesk[botbuilder]' (or unset TEAMS_ENGINE for the Agents SDK)")
BOTBUILDER_DEPRECATED = ("TEAMS_ENGINE=botbuilder: botbuilder-python is archived (support ended 31 December 2025, "
                         "no security fixes); it goes in the next release. Unset TEAMS_ENGINE to use the Microsoft "
                         "365 Agents SDK.")


def _botbuilder() -> Any:
    try:
        from bot.teams import adapter
    except ImportError as exc:
        raise ConfigError(BOTBUILDER_MISSING) from exc
    return adapter


def setup_teams(app: web.Application, *, settings: Settings, desk: Any, store: Any = None) -> Any:
    """Add ``POST /api/messages`` with the configured engine; the endpoint is also ``app[TEAMS_KEY]``."""
    if settings.teams.engine == "botbuilder":
        log.warning(BOTBUILDER_DEPRECATED)
        endpoint = _botbuilder().setup_teams(app, settings=settings, desk=desk, store=store)
    else:
        from bot.teams.agents import setup_agents

        endpoint = setup_agents(app, settings=settings, desk=desk, store=store)
    app[TEAMS_KEY] = endpoint
    return endpoint


def deliverer_from_env(store: Any, env: Mapping[str, str]) -> Any:
    """The scheduler's factory: a deliverer with its own adapter (``chinadesk worker`` has no web app)."""
    try:
        teams = TeamsSettings.from_env(env)
        if teams is not None and teams.engine == "botbuilder":
            from bot.teams.delivery import TeamsDeliverer, make_adapter  # (ImportError: extra not installed)

            return TeamsDeliverer(make_adapter(teams), store, teams)
    except (ConfigError, ImportError) as exc:  # the server refuses to start with the message; a worker skips Teams
        log.warning("Teams reminders disabled: %s", exc)
        return None
    if teams is None:  # TEAMS=off
        return None
    from bot.teams.agents import deliverer_from_settings

    return deliverer_from_settings(store, teams)


try:  # register with the reminder scheduler (bot/platforms.py imports this module to collect it)
    from bot.scheduler import register_deliverer
except ImportError:  # pragma: no cover - a checkout without the scheduler still serves Teams
    pass
else:
    register_deliverer(PLATFORM, deliverer_from_env)
