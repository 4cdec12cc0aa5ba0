"""Configuration from the environment, read once at start-up.

Each platform is switched on by its own variables; a platform that is only partly configured stops
start-up with a message naming the missing variable. Secrets are held as ``SecretStr`` so that they
never show up in a repr, a log line or a reply.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    teams: TeamsSettings = field(default_factory=lambda: TeamsSettings())  # no app id: local (Emulator) mode

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or f"sqlite:///{Path.cwd() / 'chinadesk.sqlite3'}",
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            log_format=env.get("LOG_FORMAT", "auto").lower(),
            stale_days=_int(env, "CONTENT_STALE_DAYS", 365),
            default_timezone=env.get("DEFAULT_TIMEZONE", "Asia/Shanghai"),
            teams=TeamsSettings.from_env(env),
        )


def secret(env: Mapping[str, str], name: str) -> SecretStr | None:
    value = env.get(name, "").strip()
    return SecretStr(value) if value else None


# ---------------------------------------------------------------------------------------------- Teams

TEAMS_VARIABLES = ("MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD", "MICROSOFT_APP_TYPE", "MICROSOFT_APP_TENANT_ID")
# botbuilder's ConfigurationServiceClientCredentialFactory compares these case-insensitively.
TEAMS_APP_TYPES = {"multitenant": "MultiTenant", "singletenant": "SingleTenant", "userassignedmsi": "UserAssignedMSI"}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    """Azure app (client) ids and tenant ids are GUIDs: ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``."""
    return bool(_GUID.match(value.strip()))


@dataclass(frozen=True)
class TeamsSettings:
    """The Azure Bot registration. Without an app id the Teams endpoint runs in local (Emulator) mode."""

    app_id: str | None = None
    app_password: SecretStr | None = None
    app_type: str = "MultiTenant"
    tenant_id: str | None = None

    @property
    def local_mode(self) -> bool:
        """No app id: requests are accepted without tokens and replies are sent without one."""
        return self.app_id is None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TeamsSettings:
        """The Teams settings, or :class:`ConfigError` naming the missing or malformed variable."""
        app_id = env.get("MICROSOFT_APP_ID", "").strip() or None
        password = secret(env, "MICROSOFT_APP_PASSWORD")
        tenant_id = env.get("MICROSOFT_APP_TENANT_ID", "").strip() or None
        raw_type = env.get("MICROSOFT_APP_TYPE", "").strip()
        app_type = TEAMS_APP_TYPES.get(raw_type.lower() or "multitenant")
        if app_type is None:
            raise ConfigError(
                f"MICROSOFT_APP_TYPE must be one of {', '.join(TEAMS_APP_TYPES.values())}, not {raw_type!r}"
            )
        if app_id is None:
            extra = [n for n in ("MICROSOFT_APP_PASSWORD", "MICROSOFT_APP_TENANT_ID") if env.get(n, "").strip()]
            if extra or app_type != "MultiTenant":
                named = ", ".join(extra) or "MICROSOFT_APP_TYPE"
                raise ConfigError(
                    f"Teams is partly configured ({named} set): MICROSOFT_APP_ID is missing "
                    "(the Azure Bot's Microsoft App ID)"
                )
            return cls()
        if not is_guid(app_id):
            raise ConfigError(f"MICROSOFT_APP_ID must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), not {app_id!r}")
        if app_type != "UserAssignedMSI" and password is None:
            raise ConfigError(f"MICROSOFT_APP_PASSWORD is missing: a {app_type} bot needs its client secret")
        if app_type != "MultiTenant" and tenant_id is None:
            raise ConfigError(f"MICROSOFT_APP_TENANT_ID is missing: a {app_type} bot needs its tenant id")
        if tenant_id is not None and not is_guid(tenant_id):
            raise ConfigError(f"MICROSOFT_APP_TENANT_ID must be a GUID, not {tenant_id!r}")
        return cls(app_id=app_id, app_password=password, app_type=app_type, tenant_id=tenant_id)
