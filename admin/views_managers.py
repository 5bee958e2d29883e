"""Managers ↔ extensions: each CRM user with their extension, one dropdown each; saving reassigns
(one extension, one manager) and, for RetailCRM, copies the mapping to the module's additionalCodes.

The data comes from the same operations as the JSON API (`retailcrm_api.managers_of`/`save_mapping`,
`amocrm_api.managers_of`/`save_mapping`).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from admin import amocrm_api, retailcrm_api
from admin.pages import Refused, answer, enterprise_of, read_body, session, wants_json
from agent.store import enterprises, extensions
from agent.web import keys
from agent.web.keys import Parts
from connectors import registry
from connectors.base import CrmError

USER_FIELD = "user."  # form fields user.<crm user id> = extension or ""


async def _configured(parts: Parts, number: str) -> list[str]:
    pool = parts[keys.POOL]
    return [crm for crm in registry.names() if await enterprises.get_integration(pool, number, crm)]


def _choose(request: web.Request, body: dict[str, str], configured: list[str]) -> str | None:
    asked = body.get("crm") or request.query.get("crm", "")
    if asked:
        if asked not in registry.names():
            raise Refused(400, "error.choice", "crm")
        return asked
    return configured[0] if configured else None


async def _listing(parts: Parts, number: str, crm: str, may_import: bool) -> dict[str, Any]:
    """{managers, differences, module_error, ...} or {error} when the CRM could not be asked.
    `may_import`: an admin's first visit takes RetailCRM's codes into the empty local mapping."""
    try:
        if crm == "retailcrm":
            return await retailcrm_api.managers_of(parts, number, import_codes=may_import)
        return await amocrm_api.managers_of(parts, number)
    except retailcrm_api.Problem as exc:
        return {"error": exc.message}
    except LookupError as exc:
        return {"error": str(exc)}
    except CrmError as exc:
        return {"error": f"{crm}: {exc.outcome.error or exc.outcome.status}"}


def _changes(body: dict[str, str], current: dict[str, str | None]) -> dict[str, str | None]:
    """From a JSON `user_extensions` object, or the form's user.<id> fields that differ from what is shown."""
    if "user_extensions" in body:
        try:
            raw = json.loads(body["user_extensions"])
        except json.JSONDecodeError:
            raw = None
        if not isinstance(raw, dict) or not all(v is None or isinstance(v, str) for v in raw.values()):
            raise Refused(400, "mgr.error.mapping", "user_extensions")
        return {str(k): v or None for k, v in raw.items()}
    out: dict[str, str | None] = {}
    for name, value in body.items():
        if name.startswith(USER_FIELD):
            uid = name.removeprefix(USER_FIELD)
            if (value or None) != current.get(uid):
                out[uid] = value or None
    return out


async def _save(parts: Parts, number: str, crm: str, changes: dict[str, str | None]) -> dict[str, Any]:
    try:
        if crm == "retailcrm":
            saved = await retailcrm_api.save_mapping(parts, number, changes, False)
        else:
            saved = await amocrm_api.save_mapping(parts, number, changes)
    except retailcrm_api.Problem as exc:
        return {"ok": False, "error": exc.message, "field": exc.field}
    except (LookupError, ValueError) as exc:
        return {"ok": False, "error": getattr(exc, "message", None) or str(exc), "field": getattr(exc, "field", None)}
    return {"ok": True, **saved}


def _extension_choices(items: list[extensions.Extension], managers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    owner = {m["extension"]: m for m in managers if m.get("extension")}
    return [
        {
            "extension": e.extension,
            "display_name": e.display_name,
            "owner": owner[e.extension]["user_id"] if e.extension in owner else None,
            "owner_name": owner[e.extension]["name"] if e.extension in owner else None,
        }
        for e in items
    ]


async def managers(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    number = enterprise["number"]
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    parts = request.config_dict
    body = await read_body(request) if request.method == "POST" else {}
    configured = await _configured(parts, number)
    crm = _choose(request, body, configured)
    result: dict[str, Any] | None = None
    listing: dict[str, Any] = {}
    if crm is not None and crm in configured:
        if request.method == "POST":
            listing = await _listing(parts, number, crm, session(request).can_edit)
            shown = {m["user_id"]: m["extension"] for m in listing.get("managers", [])}
            changes = _changes(body, shown)
            result = await _save(parts, number, crm, changes) if changes else {"ok": True, "unchanged": True}
            if wants_json(request):
                return web.json_response(result, status=200 if result["ok"] else 400)
        listing = await _listing(parts, number, crm, session(request).can_edit)
    managers_ = listing.get("managers", [])
    items = await extensions.list_for(parts[keys.POOL], number)
    data = {
        "enterprise": enterprise,
        "crm": crm,
        "crms": configured,
        "configured": crm in configured,
        "managers": managers_,
        "extensions": _extension_choices(items, managers_),
        "differences": listing.get("differences", []),
        "unknown_users": listing.get("unknown_users", []),
        "module_error": listing.get("module_error"),
        "imported": listing.get("imported", 0),
        "last_synced": listing.get("last_synced"),
        "error": listing.get("error"),
        "result": result,
    }
    return await answer(request, "managers.html", data, status=400 if result and not result["ok"] else 200)
