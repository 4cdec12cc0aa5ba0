"""OAuth tokens at rest: stored Slack installations are encrypted when ``TOKEN_ENCRYPTION_KEY`` is set.

The variable holds one or more Fernet keys (cryptography's authenticated AES-128-CBC + HMAC-SHA256),
comma-separated. The first key encrypts; every key decrypts (``MultiFernet``). To rotate: put a new key
first and keep the old one after it, restart (start-up re-encrypts every stored installation with the
first key), then drop the old key. A new key::

    python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"

An installation is stored as ``{"fernet": "<token>"}`` in place of its JSON; rows stored before a key
was set are encrypted at the next start-up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SEALED = "fernet"

__all__ = ["SEALED", "InvalidToken", "TokenCipher", "is_sealed"]


def is_sealed(stored: Any) -> bool:
    """An encrypted installation (as read back from the database)."""
    return isinstance(stored, dict) and set(stored) == {SEALED} and isinstance(stored[SEALED], str)


class TokenCipher:
    """Encrypts installation data with the first key; decrypts with any (see the module docstring)."""

    def __init__(self, keys: Sequence[str]) -> None:
        """``ValueError`` for no key or a malformed one (the message never holds a key)."""
        if not keys:
            raise ValueError("no key given")
        try:
            fernets = [Fernet(key.encode()) for key in keys]
        except ValueError:
            raise ValueError("a key is not a Fernet key (32 url-safe base64-encoded bytes)") from None
        self._primary = fernets[0]
        self._all = MultiFernet(fernets)

    @classmethod
    def from_setting(cls, value: str | None) -> TokenCipher | None:
        """The cipher for a ``TOKEN_ENCRYPTION_KEY`` value (None when it is empty)."""
        keys = [k.strip() for k in (value or "").split(",") if k.strip()]
        return cls(keys) if keys else None

    def seal(self, data: dict[str, Any]) -> dict[str, str]:
        plain = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str).encode()
        return {SEALED: self._all.encrypt(plain).decode()}

    def unseal(self, stored: dict[str, str]) -> dict[str, Any]:
        """The installation data; ``InvalidToken`` when none of the keys encrypted it."""
        return json.loads(self._all.decrypt(stored[SEALED].encode()))

    def is_current(self, stored: Any) -> bool:
        """Encrypted with the first key already (nothing to do at start-up)."""
        if not is_sealed(stored):
            return False
        try:
            self._primary.decrypt(stored[SEALED].encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, stored: dict[str, Any]) -> dict[str, str]:
        """``stored`` (plain, or encrypted with any key) encrypted with the first key; ``InvalidToken`` if
        no key can read it."""
        if is_sealed(stored):
            return {SEALED: self._all.rotate(stored[SEALED].encode()).decode()}
        return self.seal(stored)
