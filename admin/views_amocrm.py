"""The amoCRM page: connection status, OAuth connect (state), a pasted code or long-lived token,
disconnect, and the settings (pipeline and status for new leads, unknown callers, tags, missed-call
tasks, routing by the open deal, proxy). Operations are the JSON API's (admin/amocrm_api.py); secrets are
only shown masked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from admin import amocrm_api as amo_api
from admin.i18n import catalog
from admin.pages import Refused, after_post, answer, enterprise_of, read_body, require_admin, session
from agent.store import enterprises
from agent.web import keys
from agent.web.keys import Parts
from connectors.amocrm.settings import UNKNOWN_CALLER, SettingsError
from connectors.base import CrmError

CRM = "amocrm"
ACTIONS = ("save", "code", "token", "disconnect")
FLAGS = ("enabled", "missed_call_tasks", "route_by_deal")
TEXTS = ("host", "client_id", "client_secret", "unknown_caller", "source", "proxy", "language", "timezone")
NUMBERS = ("pipeline_id", "status_id", "task_due_minutes", "task_default_user_id")
EXPIRING = timedelta(days=7)
TRUE = ("on", "true", "1", "yes")
EVENTS = (
    "add_contact",
    "update_contact",
    "responsible_contact",
    "add_lead",
    "update_lead",
    "responsible_lead",
    "status_lead",  # a deal won or lost: with route_by_deal its caller's manager may change
)
SCOPES = ("crm", "notifications")


def field_error_key(field: str) -> str:
    """The catalogue message for a settings field the connector refused (its English words go to the API)."""
    key = f"amo.error.{field}"
    return key if key in catalog("en") else "error.invalid"


def light(status: dict[str, Any], now: datetime) -> str:
    """The connection's state for its coloured dot: connected, expiring or expired, error, not connected."""
    state = status.get("status")
    if state == "connected":
        expires = status.get("expires_at")
        if status.get("kind") == "long_lived" and expires and datetime.fromisoformat(expires) - now < EXPIRING:
            return "expiring"
        return "connected"
    return {"expired": "expired", "error": "error"}.get(str(state), "not_connected")


def shown(stored: dict[str, Any] | None, box: Any) -> dict[str, Any]:
    m = enterprises.masked(box, CRM, stored or {})
    out: dict[str, Any] = {f: m.get(f, True) for f in FLAGS}
    for f in TEXTS:
        out[f] = m.get(f) or ""
    out["unknown_caller"] = out["unknown_caller"] or "unsorted"
    for f in NUMBERS:
        out[f] = m.get(f)
    out["task_due_minutes"] = out["task_due_minutes"] or 15
    out["lead_tags"] = ", ".join(m.get("lead_tags") or ())
    out.pop("webhook_secret", None)
    return out


def submitted(body: dict[str, str], current: dict[str, Any]) -> dict[str, Any]:
    """The form over the stored (masked) settings; what was not sent keeps its value."""
    out = {k: v for k, v in current.items() if k not in ("access_token", "refresh_token", "long_lived_token")}
    for f in FLAGS:
        if f in body:
            out[f] = body[f].strip().lower() in TRUE
    for f in TEXTS:
        if f in body:
            out[f] = body[f].strip() or None
    for f in NUMBERS:
        if f in body:
            raw = body[f].strip()
            out[f] = int(raw) if raw.isdigit() and len(raw) < 19 else (raw or None)
    if "lead_tags" in body:
        out["lead_tags"] = [t.strip() for t in body["lead_tags"].split(",") if t.strip()]
    if out.get("pipeline_id") is None:
        out["status_id"] = None
    return out


async def _save(parts: Parts, number: str, body: dict[str, str], stored: dict[str, Any] | None) -> dict[str, str]:
    box = parts[keys.SECRETS]
    wanted = submitted(body, enterprises.masked(box, CRM, stored or {}))
    amo = amo_api.connector(parts)
    try:
        settings = amo.parse_settings(enterprises.unmask(box, CRM, wanted, stored))
    except SettingsError as exc:
        field = exc.field.split(".")[0]
        return {field: field_error_key(field)}
    await enterprises.put_integration(parts[keys.POOL], box, number, CRM, amo.settings_json(settings))
    return {}


async def _act(parts: Parts, number: str, action: str, body: dict[str, str]) -> dict[str, str]:
    """code / token / disconnect: {field: why} when it did not take."""
    if action == "disconnect":
        amo = amo_api.connector(parts)
        assert amo.tokens is not None
        await amo.tokens.disconnect(number)
        return {}
    settings = await amo_api.settings_of(parts, number)
    if settings is None:
        return {action: "amo.error.save_first"}
    value = body.get(action, "").strip()
    if not value or len(value) > (amo_api.CODE_MAX if action == "code" else 8192):
        return {action: f"amo.error.{action}"}
    if action == "code":
        failed = await amo_api.connect_with(parts, number, settings, settings.host, value)
        return {action: amo_api.refusal(failed)} if failed is not None else {}
    why = await amo_api.connect_token(parts, number, settings, value)
    return {action: why} if why else {}


async def _pipelines(parts: Parts, number: str, connected: bool) -> tuple[list[dict[str, Any]], str | None]:
    if not connected:
        return [], None
    settings = await amo_api.settings_of(parts, number)
    if settings is None:
        return [], None
    try:
        return await amo_api.client_for(parts, settings).pipelines(number), None
    except CrmError as exc:
        return [], exc.outcome.error or exc.outcome.status


async def amocrm(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    number = enterprise["number"]
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    parts = request.config_dict
    pool, box = parts[keys.POOL], parts[keys.SECRETS]
    stored = await enterprises.get_integration(pool, number, CRM)
    errors: dict[str, str] = {}
    form: dict[str, Any] = {}
    if request.method == "POST":
        body = await read_body(request)
        action = body.get("action", "save")
        if action not in ACTIONS:
            raise Refused(400, "error.choice", "action")
        errors = await (_save(parts, number, body, stored) if action == "save" else _act(parts, number, action, body))
        if not errors:
            return after_post(request, {"action": action, "ok": True})
        if request.content_type == "application/json":
            field = next(iter(errors))
            raise Refused(400, errors[field], field)
        if action == "save":
            form = {
                k: "" if v is None and k in TEXTS else v
                for k, v in submitted(body, shown(stored, box)).items()
                if k not in ("client_secret", "proxy")
            }
            if isinstance(form.get("lead_tags"), list):
                form["lead_tags"] = ", ".join(form["lead_tags"])
    status = await amo_api.status_of(parts, number)
    webhook_url = status.pop("webhook_url", None)
    redirect_uri = status.pop("redirect_uri")
    can_edit = session(request).can_edit
    state = light(status, datetime.now(UTC))
    pipelines, pipelines_error = await _pipelines(parts, number, status.get("status") == "connected")
    data = {
        "enterprise": enterprise,
        "configured": stored is not None,
        "settings": {**shown(stored, box), **form},
        "connection": {**status, "light": state},
        "redirect_uri": redirect_uri,
        "webhook_url": webhook_url if can_edit else None,  # carries the webhook secret: admins only
        "webhook_events": list(EVENTS),
        "scopes": list(SCOPES),
        "pipelines": pipelines,
        "pipelines_error": pipelines_error,
        "unknown_callers": list(UNKNOWN_CALLER),
        "errors": errors,
    }
    return await answer(request, "amocrm.html", data, status=400 if errors else 200)


async def connect(request: web.Request) -> web.StreamResponse:
    """«Connect amoCRM»: to the account's consent page with a signed, single-use state."""
    enterprise = await enterprise_of(request)
    require_admin(request)
    parts = request.config_dict
    settings = await amo_api.settings_of(parts, enterprise["number"])
    if settings is None or not settings.client_id or not settings.client_secret:
        raise Refused(409, "amo.error.oauth_keys")
    raise web.HTTPFound(amo_api.consent_link(parts, enterprise["number"], settings))
