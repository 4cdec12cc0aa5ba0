"""Platform-neutral advice: ``Request`` in, ``Reply`` out.

Importing this package registers every feature with the router (each module declares its own
commands next to its handler).
"""

from handlers import briefings, filing, language, qa, reminders, upcoming  # noqa: F401  (registers the commands)
from handlers.request import Reply, Request
from handlers.router import Desk, router

__all__ = ["Desk", "Reply", "Request", "router"]
