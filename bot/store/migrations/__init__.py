"""Versioned schema migrations, one SQL file per version and backend (``NNNN_name.sql``).

Applied in order at start-up by :meth:`bot.store.Store.open`; the version of each applied file is
recorded in ``schema_migrations`` so a restart applies only what is new.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from bot.store.models import StoreError

# ------------------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def load_migrations(backend: Literal["sqlite", "postgres"]) -> list[Migration]:
    """The migration files of one backend, in version order."""
    folder = resources.files("bot.store.migrations").joinpath(backend)
    out = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            out.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise StoreError(f"duplicate migration versions in bot/store/migrations/{backend}: {versions}")
    return out


def split_sql(script: str) -> list[str]:
    """Statements of a migration file (``;`` at line ends; no procedural bodies in our migrations)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]


