"""Settings written by the old system, read as the new layout (pure; applied before `settings.parse`).

The old system stored the account as `api_url` (`https://shop.retailcrm.ru` or `.../api/v5`) and the
mapping as `user_mappings` {extension: crm user id}. The new layout is `domain` and `user_extensions`
{crm user id: extension}. A new key wins over its legacy twin; the legacy keys are dropped, so the next
save writes the new layout only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_API_PATH = re.compile(r"/api(/v\d+)?/?$")


def adapt(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in raw.items() if k not in ("api_url", "user_mappings")}
    api_url = raw.get("api_url")
    if "domain" not in out and isinstance(api_url, str) and api_url.strip():
        out["domain"] = _API_PATH.sub("", api_url.strip().rstrip("/"))
    mappings = raw.get("user_mappings")
    if "user_extensions" not in out and isinstance(mappings, Mapping):
        out["user_extensions"] = {
            str(user): str(ext) for ext, user in mappings.items() if user not in (None, "") and ext not in (None, "")
        }
    return out


def is_legacy(raw: Mapping[str, Any]) -> bool:
    return "api_url" in raw or "user_mappings" in raw
