"""RetailCRM users ↔ extensions: `GET .../managers` and `PUT .../extensions` under the API's RetailCRM prefix
(bearer token), and the same operations for the Managers page and the old platform's URLs.

Every exchange is logged (integration_logs) by `retailcrm_api.logged_client`. The API always asks RetailCRM for
the users and the module. The page hands in its `CrmReads`: a view asks for the users at most once per TTL and
never for the module, whose codes it takes as the agent's own exchanges with it last showed them (registration,
a save's sync, or the page's explicit comparison), so a visit costs at most one request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from admin import mapping_check
from admin.api import _enterprise, _json_object
from admin.crm_reads import CrmReads
from admin.i18n import translator
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

MODULE = "module"  # the CrmReads entry of what the agent last saw of the module


@dataclass(frozen=True, slots=True)
class ModuleSeen:
    """The module's additionalCodes as an exchange showed them (None: no module, or `error` says why unread), and
    the last write to the module logged then (`last_write`): a later one (the API, another agent) outdates them."""

    codes: dict[str, str] | None
    error: str | None
    written: int
    at: datetime

    @classmethod
    def now(cls, codes: dict[str, str] | None, written: int, error: str | None = None) -> ModuleSeen:
        return cls(codes, error, written, datetime.now(UTC))


async def _users(parts: Parts, number: str, settings: RetailCrmSettings) -> list[CrmUser]:
    async with logged_client(parts, number, settings, "list_managers") as client:
        return await client.all_users()


async def _module(parts: Parts, number: str, settings: RetailCrmSettings) -> ModuleSeen:
    written = await last_write(parts[keys.POOL], number)  # before the read: a write during it outdates what is read
    async with logged_client(parts, number, settings, "list_managers") as client:
        try:
            module = await client.get_module()
        except CrmError as exc:  # e.g. the key may not read the module: show ours, say why theirs is missing
            return ModuleSeen.now(None, written, exc.outcome.error or exc.outcome.status)
    return ModuleSeen.now(module_codes(module) if module is not None else None, written)


async def crm_side(
    parts: Parts, number: str, settings: RetailCrmSettings, reads: CrmReads | None, compare: bool = False
) -> tuple[list[CrmUser], ModuleSeen | None]:
    """RetailCRM's users and module. Without `reads` (the API) both are asked. With them (a page view) the users
    come from `reads` while fresh, else are asked (and kept), and the module is what `reads` kept of the agent's
    last exchange with it (None: none lately), asked only when `compare` (the admin's explicit request)."""
    if reads is None:
        return await _users(parts, number, settings), await _module(parts, number, settings)
    users = await reads.get(CRM, number, "users", lambda: _users(parts, number, settings))
    if compare:
        reads.keep(CRM, number, MODULE, await _module(parts, number, settings))
    seen: ModuleSeen | None = reads.kept(CRM, number, MODULE)
    if seen is not None and await last_write(parts[keys.POOL], number) > seen.written:
        reads.forget(CRM, number, MODULE)
        return users, None
    return users, seen


async def managers_of(
    parts: Parts, number: str, reads: CrmReads | None = None, compare: bool = False
) -> dict[str, Any]:
    """CRM users with their extension (ours, else the module's additionalCodes) and the differences.

    Ours is the truth: the module's codes are shown beside it, never taken into it (registration adopts an existing
    module's codes, admin/retailcrm_adopt.py). When the module's codes are not known (a page view with no recent
    exchange with the module: `module_read_at` null) nothing is compared."""
    settings = await load_settings(parts, number)
    pool = parts[keys.POOL]
    users, seen = await crm_side(parts, number, settings, reads, compare)
    known = seen is not None
    merged = merge(users, settings.user_extensions, (seen.codes or {}) if seen is not None else {})
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
                "differs": known and m.differs,
            }
            for m in merged.managers
        ],
        "differences": merged.differences if known else [],
        "unknown_users": merged.unknown_users,
        "module_registered": None if seen is None else seen.codes is not None,
        "module_error": seen.error if seen is not None else None,
        "module_read_at": seen.at.isoformat() if seen is not None else None,
        "last_synced": await last_synced(pool, number),
        "extensions": [e.to_json() for e in await extensions.list_for(pool, number)],
    }


async def registered(parts: Parts, number: str, reads: CrmReads) -> None:
    """A registration wrote the settings' mapping as the module's codes: the page knows them without asking."""
    settings = await load_settings(parts, number)
    written = await last_write(parts[keys.POOL], number)
    reads.keep(CRM, number, MODULE, ModuleSeen.now(dict(settings.user_extensions), written))


async def last_synced(pool: Pool, number: str) -> str | None:
    """When additionalCodes were last copied to RetailCRM successfully (from integration_logs)."""
    at = await pool.fetchval(
        "SELECT max(created_at) FROM integration_logs WHERE enterprise_number = $1 AND integration_type = $2"
        " AND event_type = 'sync_codes' AND status = 'success'",
        number,
        CRM,
    )
    return at.isoformat() if at is not None else None


async def last_write(pool: Pool, number: str) -> int:
    """The integration_logs id of the last successful write to the module (0: none kept)."""
    found = await pool.fetchval(
        "SELECT max(id) FROM integration_logs WHERE enterprise_number = $1 AND integration_type = $2"
        " AND event_type IN ('sync_codes', 'register_module') AND status = 'success'",
        number,
        CRM,
    )
    return int(found or 0)


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
    known = {e.extension for e in await extensions.list_for(pool, number)}  # the old URLs store unlisted ones
    sync: dict[str, Any] = {"ok": True, "error": None}
    async with logged_client(parts, number, updated, "sync_codes") as client:
        try:
            result = await client.set_additional_codes(updated.user_extensions)
            sync["not_exist_user_ids"] = list(result.not_exist_user_ids)
        except CrmError as exc:
            sync = {"ok": False, "error": exc.outcome.error or exc.outcome.status}
    if reads is not None:  # a copied mapping is what the module now has; a failed copy leaves it unknown
        if sync["ok"]:
            seen = ModuleSeen.now(dict(updated.user_extensions), await last_write(pool, number))
            reads.keep(CRM, number, MODULE, seen)
        else:
            reads.forget(CRM, number, MODULE)
    return {
        "user_extensions": dict(updated.user_extensions),
        "moved": [{"extension": m.extension, "from_user": m.from_user, "to_user": m.to_user} for m in moves],
        "unknown_extensions": sorted(e for e in set(updated.user_extensions.values()) if known and e not in known),
        "sync": sync,
    }


# -- routes ----------------------------------------------------------------------------------------


@answers_problems
async def managers(request: web.Request) -> web.Response:
    return web.json_response(await managers_of(request.config_dict, _enterprise(request)))


async def refusals(parts: Parts, number: str, changes: dict[str, str | None]) -> dict[str, Any] | None:
    """What is wrong with `changes` against what exists (admin/mapping_check.py, as the Managers form checks it),
    every problem at once as the API's 400 body, or None. RetailCRM's users are asked (one listing); when it cannot
    list them the users are not checked (the save goes on, as the form's does)."""
    settings = await load_settings(parts, number)
    try:
        listed: dict[str, str] | None = {u.id: u.name or u.email or u.id for u in await _users(parts, number, settings)}
    except CrmError:
        listed = None
    known = [e.extension for e in await extensions.list_for(parts[keys.POOL], number)]
    problems = mapping_check.check(changes, listed, known)
    if not problems:
        return None
    t = translator("en")
    errors = {f"user_extensions.{uid}": t(key, **values) for uid, (key, values) in problems.items()}
    first = next(iter(errors))

    def named(kind: str, value: str) -> list[str]:
        return sorted({v[value] for k, v in problems.values() if k == kind}, key=lambda x: (len(x), x))

    return {
        "error": errors[first],
        "field": first,
        "errors": errors,
        "unknown_extensions": named("mgr.error.unknown_extension", "extension"),
        "unknown_users": named("mgr.error.unknown_user", "user"),
    }


@answers_problems
async def put_extensions(request: web.Request) -> web.Response:
    """`{"user_extensions": {user_id: extension | null}, "replace": false}`: assign (or with replace,
    set the whole mapping); then copy the result to the module's additionalCodes. Checked first as the Managers form
    is (`refusals`): a user RetailCRM does not list, an extension not in the enterprise's list (when it keeps one)
    or one extension given twice answers 400 naming every one, and nothing is stored or sent."""
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
    refused = await refusals(request.config_dict, number, changes)
    if refused is not None:
        return web.json_response(refused, status=400)
    return web.json_response(await save_mapping(request.config_dict, number, changes, replace))


def add_routes(api: web.Application) -> None:
    api.router.add_get(PREFIX + "/managers", managers)
    api.router.add_put(PREFIX + "/extensions", put_extensions)
