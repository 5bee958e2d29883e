"""What every CRM's settings share, validated the same way everywhere: flags, and the manager -> extension
mapping. Each function takes `error(field, message)`, which builds the connector's own SettingsError."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

USER_ID = re.compile(r"\d{1,18}")
EXTENSION = re.compile(r"[0-9A-Za-z*#+_-]{1,32}")


def parse_user_extensions(value: Any, error: Callable[[str, str], Exception], crm: str) -> dict[str, str]:
    """`{crm user id: extension}`, each extension given to one user only; `error(field, message)` builds the
    connector's own SettingsError, so the field is named the way that connector names it."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise error("user_extensions", f"must be an object {{{crm}_user_id: extension}}")
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for user_id, ext in value.items():
        uid = str(user_id)
        where = f"user_extensions.{uid}"
        if not USER_ID.fullmatch(uid):
            raise error(where, f"{'amoCRM' if crm == 'amo' else 'CRM'} user ids are numbers")
        if not isinstance(ext, str) or not EXTENSION.fullmatch(ext):
            raise error(where, "extension must be 1-32 characters: digits, letters, * # + - _")
        if ext in seen:
            raise error(where, f"extension {ext} is already given to user {seen[ext]}")
        seen[ext] = uid
        out[uid] = ext
    return out


def parse_bool(data: Mapping[str, Any], name: str, default: bool, error: Callable[[str, str], Exception]) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise error(name, "must be true or false")
    return value
