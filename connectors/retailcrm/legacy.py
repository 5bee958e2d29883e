"""Records the old system (the RetailCRM service on port 8019) wrote, read as the agent's layout (pure; applied
before `settings.parse`, on every read, so an old record works without anyone saving it again).

What the old service wrote (../shared/seeds/001_*, 003_*), and how it is read:

- `api_url` (`https://shop.retailcrm.ru`, or with `/api/v5`) -> `domain`; a `domain` with `/api/v5` loses it too;
- `user_mappings` {extension: user id, a number or a string} -> `user_extensions` {user id: extension};
- `user_extensions` whose value is `null` (the manager's number was taken away) or a number;
- `client_id` (`vochi-asterisk`): the old module *code*, not the secret our module's `clientId` is. A record
  without `code` was never saved by the agent (it always writes one); when it also has an old key or a
  `client_id` too short to be ours, its `client_id` becomes `code` and the `clientId` is derived from the API
  key (stable across reads and agents until the record is saved);
- `enabled` as `"true"`/`"false"` (and the like) as well as a bool;
- no `timezone`: the enterprise's, else `DEFAULT_TIMEZONE`;
- `last_sync`, `version` and any other key the agent does not know: kept as they were (the record is the
  platform's), and written back unchanged on save.

A new key wins over its legacy twin; the legacy twins are dropped, so a save writes the agent's layout.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from connectors.texts import known_zone

OLD_MODULE_CODE = "vochi-telephony"  # the code the old service registered its module under (seed 001)
DEFAULT_TIMEZONE = "Europe/Moscow"  # the agent's default for a record without one (the admin page's too)
LEGACY_KEYS = ("api_url", "user_mappings")
_API_PATH = re.compile(r"/api(/v\d+)?/?$")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")  # settings.parse's rule for the agent's clientId
_OLD_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TRUE = frozenset({"true", "1", "yes", "on", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "off", "n", "f", ""})


def adapt(raw: Mapping[str, Any], *, timezone: str | None = None) -> dict[str, Any]:
    """The record in the agent's layout; `timezone` is the enterprise's, for a record without one."""
    out = {k: v for k, v in raw.items() if k not in LEGACY_KEYS}
    api_url = raw.get("api_url")
    if not out.get("domain") and isinstance(api_url, str) and api_url.strip():
        out["domain"] = api_url
    if isinstance(out.get("domain"), str):
        out["domain"] = _API_PATH.sub("", out["domain"].strip().rstrip("/"))
    mappings = raw.get("user_mappings")
    if "user_extensions" not in out and isinstance(mappings, Mapping):
        out["user_extensions"] = {user: ext for ext, user in mappings.items()}
    if isinstance(out.get("user_extensions"), Mapping):
        out["user_extensions"] = _assigned(out["user_extensions"])
    enabled = out.get("enabled")
    if isinstance(enabled, str) and enabled.strip().lower() in _TRUE | _FALSE:
        out["enabled"] = enabled.strip().lower() in _TRUE
    if out.get("timezone") in (None, ""):
        out["timezone"] = timezone if timezone and known_zone(timezone) else DEFAULT_TIMEZONE
    if "code" not in raw and (
        any(k in raw for k in LEGACY_KEYS) or not _CLIENT_ID.fullmatch(str(out.get("client_id")))
    ):
        _adopt_old_code(out)
    return out


def is_legacy(raw: Mapping[str, Any]) -> bool:
    """Written by the old system (never saved by the agent, which always writes `code`)."""
    return any(k in raw for k in LEGACY_KEYS) or (bool(raw) and "code" not in raw)


def missing_timezone(raw: Mapping[str, Any]) -> bool:
    return raw.get("timezone") in (None, "")


def _assigned(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    """{user id: extension} without the unassigned (`null`, empty); numbers as strings."""
    out: dict[str, Any] = {}
    for user, ext in mapping.items():
        if user in (None, "") or ext in (None, ""):
            continue
        if isinstance(ext, int) and not isinstance(ext, bool):
            ext = str(ext)
        out[str(user)] = ext
    return out


def _adopt_old_code(out: dict[str, Any]) -> None:
    old = out.pop("client_id", None)
    if isinstance(old, str) and _OLD_CODE.fullmatch(old):
        out["code"] = old
    key = out.get("api_key")
    # an encrypted or masked key (a page's view of the record) cannot give the clientId: parse makes one up
    if isinstance(key, str) and key and not key.startswith("enc:") and "…" not in key and key != "***":
        out["client_id"] = hashlib.sha256(b"pbx-agent retailcrm clientId\0" + key.encode()).hexdigest()[:48]
