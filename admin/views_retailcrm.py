"""The RetailCRM page: connection settings, test, module registration, removal.

Every change goes through the same operations as the JSON API (admin/retailcrm_api.py) and the same
validation (the connector's settings parser). The API key is only ever shown masked; sending the mask
back keeps the stored key.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin import retailcrm_api as rc
from admin import retailcrm_managers
from admin.crm_reads import CRM_READS
from admin.pages import Refused, after_post, answer, enterprise_of, iso, read_body
from admin.retailcrm_api import CRM, Problem
from agent.life.masking import mask_data
from agent.store import enterprises
from agent.web import keys
from agent.web.keys import Parts
from connectors.base import CrmError
from connectors.retailcrm import store as retailcrm_store
from connectors.retailcrm.legacy import DEFAULT_TIMEZONE, LEGACY_KEYS, adapt, is_legacy, missing_timezone
from connectors.retailcrm.settings import DEFAULT_CODE, KNOWN, SettingsError, parse

FLAGS = (
    "enabled",
    "popup_in",
    "popup_out",
    "popup_hangup",
    "upload_history",
    "missed_call_tasks",
    "create_customers",
    "create_orders",
)
OFF_BY_DEFAULT = frozenset({"missed_call_tasks", "create_customers", "create_orders"})
TEXTS = (
    "domain",
    "api_key",
    "timezone",
    "language",
    "site",
    "external_phone",
    "task_due_minutes",
    "task_default_user_id",
    "order_method",
)
ACTIONS = ("save", "test", "register", "delete")
TRUE = ("on", "true", "1", "yes")


def shown(stored: dict[str, Any] | None, box: Any, zone: str | None = None) -> dict[str, Any]:
    """The stored settings as the page shows them: the agent's layout (an old record adapted first, then
    masked), secrets masked, client_id left out; `zone` is the enterprise's, for a record without one."""
    masked = enterprises.masked(box, CRM, adapt(stored or {}, timezone=zone))
    out: dict[str, Any] = {f: masked.get(f, f not in OFF_BY_DEFAULT) for f in FLAGS}
    for f in TEXTS:
        out[f] = masked.get(f) or ""
    out["task_due_minutes"] = out["task_due_minutes"] or 15
    out["order_method"] = out["order_method"] or "phone"
    out["timezone"] = out["timezone"] or zone or DEFAULT_TIMEZONE
    out["user_extensions"] = masked.get("user_extensions") or {}
    out["code"] = masked.get("code") or DEFAULT_CODE
    return out


def kept(stored: dict[str, Any] | None) -> dict[str, Any]:
    """Keys of the record the agent does not use, kept as written (`last_sync`, `version`, ...), masked."""
    found: dict[str, Any] = mask_data(
        {k: v for k, v in (stored or {}).items() if k not in KNOWN and k not in LEGACY_KEYS}
    )
    return found


def _timezone_from(stored: dict[str, Any] | None, zone: str | None, shown_zone: str) -> str | None:
    if not stored or not missing_timezone(stored):
        return None
    return "enterprise" if zone and shown_zone == zone else "default"


def submitted(body: dict[str, str], current: dict[str, Any]) -> dict[str, Any]:
    """The form over the stored (masked) settings: a flag or text that was not sent keeps its value."""
    out = dict(current)
    for f in FLAGS:
        if f in body:
            out[f] = body[f].strip().lower() in TRUE
    for f in TEXTS:
        if f in body:
            out[f] = body[f].strip()
    for f in ("site", "external_phone", "task_default_user_id"):
        out[f] = out.get(f) or None
    return out


def typed(body: dict[str, str], stored: dict[str, Any] | None, box: Any) -> dict[str, Any]:
    """What was typed, to show again beside an error or a test's answer: never the key, no None."""
    return {k: "" if v is None else v for k, v in submitted(body, shown(stored, box)).items() if k != "api_key"}


async def _save(parts: Parts, number: str, body: dict[str, str], stored: dict[str, Any] | None) -> dict[str, str]:
    pool, box = parts[keys.POOL], parts[keys.SECRETS]
    zone = await enterprises.timezone_of(pool, number)
    # adapted before masking: an old record's client_id is its module code, and its clientId comes from the key
    current = adapt(stored or {}, timezone=zone)
    wanted = submitted(body, enterprises.masked(box, CRM, current))
    try:
        settings = parse(adapt(enterprises.unmask(box, CRM, wanted, current), timezone=zone))
    except SettingsError as exc:
        return {exc.field: rc.field_error_key(exc.field)}
    await enterprises.put_integration(pool, box, number, CRM, settings.to_json())
    if "smart_redirect" in body:
        row = await enterprises.get(pool, number)
        assert row is not None
        await enterprises.put(
            pool, number, row["name"], {**row["settings"], "redirect_when_busy": body["smart_redirect"] in TRUE}
        )
    return {}


async def _run(parts: Parts, number: str, action: str, body: dict[str, str]) -> dict[str, Any]:
    """test / register / delete: RetailCRM's answer, or why there is none, as {action, ok, ...}."""
    try:
        if action == "test":
            if "domain" in body:  # the form as typed, before it is saved
                stored = await enterprises.get_integration(parts[keys.POOL], number, CRM)
                zone = await enterprises.timezone_of(parts[keys.POOL], number)
                shown_now = shown(stored, parts[keys.SECRETS], zone)
                settings = await rc.settings_to_test(parts, number, submitted(body, shown_now))
            else:
                settings = await rc.load_settings(parts, number)
            return {"action": action, **await rc.connection_report(parts, number, settings)}
        if action == "register":
            return {"action": action, "ok": True, **await rc.register_module(parts, number)}
        crm_answer = None
        try:
            crm_answer = await rc.deregister_module(parts, number)
        except Problem as exc:  # removal goes on: the settings go whatever RetailCRM says
            crm_answer = {"error": exc.message, **exc.page()}
        await enterprises.delete_integration(parts[keys.POOL], number, CRM)
        return {"action": action, "ok": True, "deleted": True, **crm_answer}
    except Problem as exc:  # `error` in English (the JSON's contract), `error_code` and `error_values` for the page
        return {"action": action, "ok": False, "error": exc.message, "field": exc.field, **exc.page()}
    except CrmError as exc:  # the page reads `error` with admin/said.py
        return {
            "action": action,
            "ok": False,
            "error": exc.outcome.error or exc.outcome.status,
            "http_status": exc.outcome.http_status,
        }


async def retailcrm(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    number = enterprise["number"]
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    parts = request.config_dict
    pool, box = parts[keys.POOL], parts[keys.SECRETS]
    stored = await enterprises.get_integration(pool, number, CRM)
    errors: dict[str, str] = {}
    result: dict[str, Any] | None = None
    form: dict[str, Any] = {}
    if request.method == "POST":
        body = await read_body(request)
        action = body.get("action", "save")
        if action not in ACTIONS:
            raise Refused(400, "error.choice", "action")
        if action == "save" or (action == "register" and "domain" in body):  # «Save and register»
            errors = await _save(parts, number, body, stored)
            if not errors and action == "save":
                return after_post(request, {"action": "save", "ok": True})
        if errors:
            if request.content_type == "application/json":
                field = next(iter(errors))
                raise Refused(400, errors[field], field)
            form = typed(body, stored, box)
        else:
            result = await _run(parts, number, action, body)
            if action == "register" and result["ok"]:  # the module now has our codes: the Managers page knows them
                await retailcrm_managers.registered(parts, number, request.app[CRM_READS])
            if action == "test" and "domain" in body:  # keep what was typed (never the key) beside the answer
                form = typed(body, stored, box)
            if request.content_type == "application/json":
                failed = 400 if result.get("field") else 502
                return web.json_response(result, status=200 if result["ok"] or action == "test" else failed)
            stored = await enterprises.get_integration(pool, number, CRM)
    row = await enterprises.get(pool, number)
    module = await retailcrm_store.module_state(pool, number)
    zone = await enterprises.timezone_of(pool, number)
    settings = shown(stored, box, zone)
    data = {
        "enterprise": enterprise,
        "configured": stored is not None,
        "legacy": bool(stored) and is_legacy(stored or {}),
        # the record has no time zone: the page says whose it shows (the enterprise's or the agent's default)
        "timezone_from": _timezone_from(stored, zone, settings["timezone"]),
        "kept": kept(stored),
        "settings": {**settings, **form},
        "smart_redirect": bool(row and row["settings"].get("redirect_when_busy")),
        "module": {k: iso(v) if hasattr(v, "isoformat") else v for k, v in (module or {}).items()} or None,
        "result": result,
        "errors": errors,
    }
    return await answer(request, "retailcrm.html", data, status=400 if errors else 200)
