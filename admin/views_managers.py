"""Managers ↔ extensions: each CRM user with their extension, one dropdown each; saving reassigns
(one extension, one manager) and, for RetailCRM, copies the mapping to the module's additionalCodes.

The data comes from the same operations as the JSON API (`retailcrm_managers.managers_of`/`save_mapping`,
`amocrm_api.managers_of`/`save_mapping`); what they read from the CRM is kept a short while (`CrmReads`), so a visit
costs at most one CRM request (the users) and none while fresh. RetailCRM's own codes are shown as the agent's last
exchange with the module left them (registration, a save); `?compare=1` reads them again.
A change is checked against what exists first (`mapping_check`): every unknown user or extension is named
beside its field, and nothing is saved or sent.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from admin import amocrm_api, mapping_check, retailcrm_api, retailcrm_managers
from admin.crm_reads import CRM_READS
from admin.pages import Refused, answer, enterprise_of, read_body, t, wants_json
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


async def _listing(request: web.Request, number: str, crm: str, compare: bool = False) -> dict[str, Any]:
    """{managers, differences, module_error, ...} or {error} when the CRM could not be asked.
    `compare`: RetailCRM's module is read again, to compare its codes with ours."""
    parts, reads = request.config_dict, request.app[CRM_READS]
    try:
        if crm == "retailcrm":
            return await retailcrm_managers.managers_of(parts, number, reads=reads, compare=compare)
        return await amocrm_api.managers_of(parts, number, reads=reads)
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


async def _save(request: web.Request, number: str, crm: str, changes: dict[str, str | None]) -> dict[str, Any]:
    parts = request.config_dict
    try:
        if crm == "retailcrm":
            reads = request.app[CRM_READS]
            saved = await retailcrm_managers.save_mapping(parts, number, changes, False, reads=reads)
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


def _named(result: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """Moves with the managers' names beside their ids (the page says who, not `#7`)."""
    moved = [
        {**m, "from_name": names.get(m["from_user"]), "to_name": names.get(m["to_user"])}
        for m in result.get("moved", [])
    ]
    return {**result, "moved": moved} if "moved" in result else result


async def _post(
    request: web.Request, number: str, crm: str, listing: dict[str, Any], items: list[extensions.Extension]
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """(result, errors {field: message}, form {user id: what was typed}) of a POST; saved only when no errors."""
    body = await read_body(request)
    shown = {m["user_id"]: m["extension"] for m in listing.get("managers", [])}
    changes = _changes(body, shown)
    if not changes:
        return {"ok": True, "unchanged": True}, {}, {}
    names = {m["user_id"]: m["name"] or m["email"] or m["user_id"] for m in listing.get("managers", [])}
    users = names if "managers" in listing else None
    problems = mapping_check.check(changes, users, [e.extension for e in items])
    if problems:
        tr = t(request)
        errors = {f"{USER_FIELD}{uid}": tr(key, **values) for uid, (key, values) in problems.items()}
        first = next(iter(errors))
        form = {uid: ext or "" for uid, ext in changes.items()}
        return {"ok": False, "error": errors[first], "field": first, "errors": errors}, errors, form
    return _named(await _save(request, number, crm, changes), names), {}, {}


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
    errors: dict[str, str] = {}
    form: dict[str, str] = {}
    listing: dict[str, Any] = {}
    items = await extensions.list_for(parts[keys.POOL], number)
    if crm is not None and crm in configured:
        compare = request.method != "POST" and request.query.get("compare") == "1"
        listing = await _listing(request, number, crm, compare)
        if request.method == "POST":
            result, errors, form = await _post(request, number, crm, listing, items)
            if wants_json(request):
                return web.json_response(result, status=200 if result["ok"] else 400)
            if result["ok"] and not result.get("unchanged"):
                listing = await _listing(request, number, crm)  # from the fresh cache
    managers_ = listing.get("managers", [])
    names = {m["user_id"]: m["name"] or m["email"] or m["user_id"] for m in managers_}
    data = {
        "enterprise": enterprise,
        "crm": crm,
        "crms": configured,
        "configured": crm in configured,
        "managers": managers_,
        "extensions": _extension_choices(items, managers_),
        "differences": [{**d, "name": names.get(str(d["user_id"]))} for d in listing.get("differences", [])],
        "unknown_users": listing.get("unknown_users", []),
        "module_error": listing.get("module_error"),
        "module_read_at": listing.get("module_read_at"),
        "last_synced": listing.get("last_synced"),
        "error": listing.get("error"),
        "result": result,
        "errors": errors,
        "form": form,
    }
    return await answer(request, "managers.html", data, status=400 if result and not result["ok"] else 200)
