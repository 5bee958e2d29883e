"""RetailCRM users ↔ extensions: `GET .../managers` and `PUT .../extensions` under the API's RetailCRM prefix
(bearer token), and the same operations for the Managers page and the old platform's URLs.

Every exchange is logged (integration_logs) by `retailcrm_api.logged_client`. The page hands in its
`CrmReads`, so a view within its TTL reads nothing from RetailCRM; the API always asks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin.api import _enterprise, _json_object
from admin.crm_reads import CrmReads
from admin.retailcrm_api import CRM, PREFIX, Problem, answers_problems, load_settings, logged_client
from agent.store import enterprises, extensions
from agent.store.database import Pool
from agent.web import keys
from agent.web.keys import Parts
from connectors.base import CrmError
from connectors.retailcrm import store as retailcrm_store
from connectors.retailcrm.mapping import MappingError, merge, module_codes, reassign
from connectors.retailcrm.models import CrmUser
from connectors.retailcrm.settings import RetailCrmSettings, SettingsError, parse

Module = tuple[dict[str, Any] | None, str | None]  # the module (None: none registered), why it could not be read


async def _users(parts: Parts, number: str, settings: RetailCrmSettings) -> list[CrmUser]:
    async with logged_client(parts, number, settings, "list_managers") as client:
        return await client.all_users()


async def _module(parts: Parts, number: str, settings: RetailCrmSettings) -> Module:
    async with logged_client(parts, number, settings, "list_managers") as client:
        try:
            return await client.get_module(), None
        except CrmError as exc:  # e.g. the key may not read the module: show ours, say why theirs is missing
            return None, exc.outcome.error or exc.outcome.status


async def crm_side(
    parts: Parts, number: str, settings: RetailCrmSettings, reads: CrmReads | None
) -> tuple[list[CrmUser], Module]:
    """RetailCRM's users and module: from `reads` while fresh, else asked (and kept there)."""
    if reads is None:
        return await _users(parts, number, settings), await _module(parts, number, settings)
    users = await reads.get(CRM, number, "users", lambda: _users(parts, number, settings))
    module = await reads.get(CRM, number, "module", lambda: _module(parts, number, settings))
    return users, module


async def managers_of(
    parts: Parts, number: str, import_codes: bool = False, reads: CrmReads | None = None
) -> dict[str, Any]:
    """CRM users with their extension (ours, else the module's additionalCodes) and the differences.

    With `import_codes`, a local mapping that is still empty takes the codes registered at RetailCRM
    (the first visit of the managers page); from then on ours is the truth and differences are shown."""
    settings = await load_settings(parts, number)
    pool = parts[keys.POOL]
    users, (module, crm_error) = await crm_side(parts, number, settings, reads)
    codes, imported = module_codes(module), 0
    if import_codes and not settings.user_extensions and codes:
        try:
            settings = parse({**settings.to_json(), "user_extensions": codes})
        except SettingsError:
            pass  # codes we cannot take as they are: shown as differences instead
        else:
            await enterprises.put_integration(pool, parts[keys.SECRETS], number, CRM, settings.to_json())
            imported = len(codes)
    merged = merge(users, settings.user_extensions, codes)
    status = {s.user_id: s.status for s in await retailcrm_store.user_statuses(pool, number)}
    return {
        "managers": [
            {
                "user_id": m.user.id,
                "name": m.user.name,
                "email": m.user.email,
                "active": m.user.active,
                "is_manager": m.user.is_manager,
                "status": status.get(m.user.id, m.user.status),
                "extension": m.extension,
                "source": m.source,
                "crm_extension": m.crm_extension,
                "differs": m.differs,
            }
            for m in merged.managers
        ],
        "differences": merged.differences,
        "unknown_users": merged.unknown_users,
        "module_registered": module is not None,
        "module_error": crm_error,
        "imported": imported,
        "last_synced": await last_synced(pool, number),
        "extensions": [e.to_json() for e in await extensions.list_for(pool, number)],
    }


async def last_synced(pool: Pool, number: str) -> str | None:
    """When additionalCodes were last copied to RetailCRM successfully (from integration_logs)."""
    at = await pool.fetchval(
        "SELECT max(created_at) FROM integration_logs WHERE enterprise_number = $1 AND integration_type = $2"
        " AND event_type = 'sync_codes' AND status = 'success'",
        number,
        CRM,
    )
    return at.isoformat() if at is not None else None


def _with_codes(module: dict[str, Any], codes: dict[str, str]) -> dict[str, Any]:
    """The cached module as it is after a successful sync of `codes`."""
    integrations = dict(module.get("integrations") or {})
    telephony = dict(integrations.get("telephony") or {})
    telephony["additionalCodes"] = [{"userId": uid, "code": code} for uid, code in codes.items()]
    return {**module, "integrations": {**integrations, "telephony": telephony}}


async def save_mapping(
    parts: Parts, number: str, changes: dict[str, str | None], replace: bool, reads: CrmReads | None = None
) -> dict[str, Any]:
    """Assign `{user_id: extension | None}` (or, with replace, set the whole mapping), store it, then copy
    it to the module's additionalCodes (a failed copy is reported in `sync`, the local mapping stays)."""
    settings = await load_settings(parts, number)
    try:
        mapping, moves = reassign(settings.user_extensions, changes, replace=replace)
        updated = parse({**settings.to_json(), "user_extensions": mapping})
    except (MappingError, SettingsError) as exc:
        raise Problem(400, getattr(exc, "message", str(exc)), getattr(exc, "field", None)) from None
    pool, box = parts[keys.POOL], parts[keys.SECRETS]
    try:
        await enterprises.put_integration(pool, box, number, CRM, updated.to_json())
    except enterprises.NotFound:
        raise Problem(404, f"no enterprise {number}") from None
    known = {e.extension for e in await extensions.list_for(pool, number)}
    sync: dict[str, Any] = {"ok": True, "error": None}
    async with logged_client(parts, number, updated, "sync_codes") as client:
        try:
            result = await client.set_additional_codes(updated.user_extensions)
            sync["not_exist_user_ids"] = list(result.not_exist_user_ids)
        except CrmError as exc:
            sync = {"ok": False, "error": exc.outcome.error or exc.outcome.status}
    if reads is not None:
        cached = await reads.get(CRM, number, "module", _nothing)
        if sync["ok"] and cached[0] is not None:
            reads.put(CRM, number, "module", (_with_codes(cached[0], dict(updated.user_extensions)), None))
        else:
            reads.forget(CRM, number, "module")
    return {
        "user_extensions": dict(updated.user_extensions),
        "moved": [{"extension": m.extension, "from_user": m.from_user, "to_user": m.to_user} for m in moves],
        "unknown_extensions": sorted(e for e in set(updated.user_extensions.values()) if known and e not in known),
        "sync": sync,
    }


async def _nothing() -> Module:
    return None, None


# -- routes ----------------------------------------------------------------------------------------


@answers_problems
async def managers(request: web.Request) -> web.Response:
    return web.json_response(await managers_of(request.config_dict, _enterprise(request)))


@answers_problems
async def put_extensions(request: web.Request) -> web.Response:
    """`{"user_extensions": {user_id: extension | null}, "replace": false}`: assign (or with replace,
    set the whole mapping); then copy the result to the module's additionalCodes. The API's contract: an
    extension that is not in the enterprise's list is saved and reported in `unknown_extensions` (the admin page
    refuses it, admin/mapping_check.py)."""
    number = _enterprise(request)
    body = await _json_object(request)
    unknown = sorted(set(body) - {"user_extensions", "replace"})
    if unknown:
        raise Problem(400, f"unknown field {unknown[0]!r}", unknown[0])
    changes, replace = body.get("user_extensions"), body.get("replace", False)
    if not isinstance(changes, dict) or not all(v is None or isinstance(v, str) for v in changes.values()):
        raise Problem(400, "must be an object {crm_user_id: extension or null}", "user_extensions")
    if not isinstance(replace, bool):
        raise Problem(400, "must be true or false", "replace")
    return web.json_response(await save_mapping(request.config_dict, number, changes, replace))


def add_routes(api: web.Application) -> None:
    api.router.add_get(PREFIX + "/managers", managers)
    api.router.add_put(PREFIX + "/extensions", put_extensions)
