"""The state secret, and what is derived from it: encryption of secrets at rest, and masking for display."""

from __future__ import annotations

import base64
import copy
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.life.masking import MASK_ALL
from agent.life.runas import give_to_state_owner

SECRET_FILE = "secret.key"
ENCRYPTED_PREFIX = "enc:v1:"


def load_or_create_secret(state_dir: Path) -> bytes:
    """<state_dir>/secret.key: 32 random bytes (hex), created once with mode 0600."""
    path = state_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its secret
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(value.hex() + "\n")
    give_to_state_owner(path, state_dir)
    return value


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A separate 32-byte key per purpose, so a key used for signing never also encrypts."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret)


class SecretBox:
    """Encrypts secrets stored in PostgreSQL (Fernet: AES-128-CBC + HMAC-SHA256), and knows which settings
    keys of each CRM hold them (`secret_fields`, handed in from the connectors' registry)."""

    def __init__(self, secret: bytes, secret_fields: Mapping[str, Sequence[str]]) -> None:
        key = base64.urlsafe_b64encode(derive_key(secret, "pbx-agent secrets at rest"))
        self._fernet = Fernet(key)
        self._fields = {crm: tuple(fields) for crm, fields in secret_fields.items()}

    def decrypted(self, crm: str, stored: Mapping[str, Any]) -> dict[str, Any]:
        """For the connector that needs the secrets in clear; never for display."""
        out = copy.deepcopy(dict(stored))
        for key in self.fields(crm):
            value = out.get(key)
            if isinstance(value, str) and value:
                out[key] = self.decrypt(value)
        return out

    def fields(self, crm: str) -> tuple[str, ...]:
        """The keys of `crm`'s settings whose values are secrets (dotted paths for nested keys)."""
        return self._fields.get(crm, ())

    def encrypt(self, plaintext: str) -> str:
        return ENCRYPTED_PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        if not is_encrypted(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(ENCRYPTED_PREFIX) :].encode()).decode()
        except InvalidToken:
            raise ValueError("a stored secret cannot be decrypted with this state secret") from None


def is_encrypted(value: str) -> bool:
    return value.startswith(ENCRYPTED_PREFIX)


def looks_masked(value: str) -> bool:
    """A value the API handed out masked (connectors.base.mask), sent back unchanged by a client."""
    return "…" in value or value == MASK_ALL
