"""The Teams app package an admin uploads: manifest.json (bot id filled in) and the two icons."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

log = logging.getLogger("chinadesk.teams")


# ------------------------------------------------------------------------------- Teams app package

APP_PACKAGE_FILES = ("manifest.json", "color.png", "outline.png")
APP_ID_PLACEHOLDER = "{{MICROSOFT_APP_ID}}"
DEFAULT_PACKAGE = "chinadesk-teams.zip"


def teams_dir() -> Path:
    """This package's folder: the manifest template and the two icons live beside the code."""
    return Path(__file__).resolve().parent


def build_app_package(app_id: str, out: Path, *, source: Path | None = None) -> Path:
    """Write the zip an admin uploads to Teams: manifest.json (ids filled in) and both icons at the root.

    Raises ``ValueError`` with a one-line reason for a malformed app id or a missing template file.
    """
    from bot.config import is_guid

    app_id = app_id.strip()
    if not is_guid(app_id):
        raise ValueError(
            f"--app-id must be the bot's Microsoft App ID, a GUID like 00000000-0000-0000-0000-000000000000, "
            f"not {app_id!r}"
        )
    source = source or teams_dir()
    missing = [name for name in APP_PACKAGE_FILES if not (source / name).is_file()]
    if missing:
        raise ValueError(f"{', '.join(missing)} not found in {source} (run from a China Desk checkout)")
    template = (source / "manifest.json").read_text(encoding="utf-8")
    manifest = template.replace(APP_ID_PLACEHOLDER, app_id.lower())
    if "{{" in manifest:
        raise ValueError(f"{source / 'manifest.json'} has a placeholder other than {APP_ID_PLACEHOLDER}")
    json.loads(manifest)  # a broken template must not become a package Teams rejects with a vague error
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", manifest)
        for name in APP_PACKAGE_FILES[1:]:
            package.write(source / name, arcname=name)
    return out
