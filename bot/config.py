"""Configuration from the environment, read once at start-up.

Each platform is switched on by its own variables; a platform that is only partly configured stops
start-up with a message naming the missing variable. Secrets are held as ``SecretStr`` so that they
never show up in a repr, a log line or a reply.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr


class ConfigError(Exception):
    """A setting is missing or contradicts another; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    database_url: str
    log_level: str = "INFO"
    log_format: str = "auto"  # auto | json | text
    stale_days: int = 365
    default_timezone: str = "Asia/Shanghai"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or f"sqlite:///{Path.cwd() / 'chinadesk.sqlite3'}",
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            log_format=env.get("LOG_FORMAT", "auto").lower(),
            stale_days=_int(env, "CONTENT_STALE_DAYS", 365),
            default_timezone=env.get("DEFAULT_TIMEZONE", "Asia/Shanghai"),
        )


def secret(env: Mapping[str, str], name: str) -> SecretStr | None:
    value = env.get(name, "").strip()
    return SecretStr(value) if value else None
