"""Secrets as they may be shown: `abcd…wxyz`, in free text, in JSON-like data (logs, integration_logs, pages).

Imports nothing; every part may use it, connectors included (the one module of `agent` besides CallEvent that
they may import).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

# Keys whose values are secrets wherever they appear (headers, query strings, form fields, JSON).
SECRET_KEYS = frozenset(
    {
        "apikey",
        "api_key",
        "x-api-key",
        "authorization",
        "access_token",
        "refresh_token",
        "client_secret",
        "token",
        "password",
        "secret",
    }
)
MASK_ALL = "***"
_SHORTEST_PARTLY_SHOWN = 16
_KEY_VALUE = re.compile(
    r"(?P<key>(?:" + "|".join(re.escape(k) for k in sorted(SECRET_KEYS, key=len, reverse=True)) + r"))"
    r"(?P<sep>\"?\s*[=:]\s*\"?)(?P<value>[^&\s\"',;}]+)",
    re.IGNORECASE,
)


def mask(secret: str) -> str:
    """`abcd…wxyz` for long secrets; short ones are hidden entirely (four plus four would be most of it)."""
    if len(secret) < _SHORTEST_PARTLY_SHOWN:
        return MASK_ALL
    return f"{secret[:4]}…{secret[-4:]}"


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secret values (raw and URL-encoded) and `apiKey=…`-style pairs in free text."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, mask(secret))
    return _KEY_VALUE.sub(_mask_pair, text)


def _mask_pair(m: re.Match[str]) -> str:
    value = m.group("value")
    if value == MASK_ALL or "…" in value:
        return m.group(0)
    return f"{m.group('key')}{m.group('sep')}{mask(value)}"


def mask_data(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings; URLs and query strings inside) with secrets masked.

    Values under a secret-sounding key are masked whatever they are; known secret values are masked
    wherever they occur.
    """
    known = tuple(s for s in secrets if s)
    return _mask(value, known)


def _mask(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if key.lower() in SECRET_KEYS and isinstance(v, str | int):
                out[key] = mask(str(v))
            else:
                out[key] = _mask(v, secrets)
        return out
    if isinstance(value, list | tuple):
        return [_mask(v, secrets) for v in value]
    return value
