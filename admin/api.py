"""The JSON config API: the bearer-token middleware of its sub-application (admin/api_app.py), the helpers the
other API modules share, and enterprises with their CRM settings."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agent.store import api_tokens, enterprises
from agent.web import keys
from agent.web.server import Handler
from agent.web.tokens import Principal, TokenError
from connectors import registry
from connectors.base import ENTERPRISE_NUMBER
from connectors.retailcrm import store as retailcrm_store

PREFIX = "/api"  # where agent.app mounts the sub-application
PRINCIPAL = web.RequestKey("principal", Principal)
ENTERPRISE_RE = ENTERPRISE_NUMBER
NAME_MAX = 200
OPEN_ROUTE = "open-"  # a route whose name starts so answers without a token (the 410s of never-built URLs)


def error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == PREFIX:  # the sub-application also matches its bare prefix, never an API URL: 404 as ever
        return await handler(request)
    if (request.match_info.route.name or "").startswith(OPEN_ROUTE):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error(401, "missing bearer token (Authorization: Bearer <token from `pbx-agent token`>)")
    try:
        principal = request.config_dict[keys.SIGNER].verify(token.strip())
    except TokenError as exc:
        return error(401, str(exc))
    pool = request.config_dict[keys.POOL]
    if principal.source is not None and not await retailcrm_store.token_current(
        pool, principal.source, principal.enterprise, principal.token_id
    ):
        return error(401, "token revoked (the RetailCRM module was registered again or removed)")
    if principal.source is None and await api_tokens.revoked(pool, principal.token_id):
        return error(401, "token revoked (pbx-agent token --revoke, or the Instance page)")
    request[PRINCIPAL] = principal
    return await handler(request)


def _enterprise(request: web.Request) -> str:
    number = request.match_info["number"]
    if not ENTERPRISE_RE.fullmatch(number):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "invalid enterprise number", "field": "number"}), content_type="application/json"
        )
    principal = request[PRINCIPAL]
    if not principal.may_access(number):
        raise web.HTTPForbidden(
            text=json.dumps({"error": "this token is for another enterprise"}), content_type="application/json"
        )
    return number


def _crm(request: web.Request) -> str:
    crm = request.match_info["crm"]
    if crm not in registry.names():
        raise web.HTTPBadRequest(
            text=json.dumps(
                {"error": f"unknown CRM {crm!r}; expected one of {', '.join(registry.names())}", "field": "crm"}
            ),
            content_type="application/json",
        )
    return crm


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "request body is not valid JSON"}), content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "request body must be a JSON object"}), content_type="application/json"
        )
    return body


async def get_enterprise(request: web.Request) -> web.Response:
    number = _enterprise(request)
    row = await enterprises.get(request.config_dict[keys.POOL], number)
    if row is None:
        return error(404, f"no enterprise {number}")
    box = request.config_dict[keys.SECRETS]
    integrations = {
        crm: enterprises.masked(box, crm, value)
        for crm, value in row["integrations_config"].items()
        if isinstance(value, dict)
    }
    return web.json_response(
        {"number": row["number"], "name": row["name"], "settings": row["settings"], "integrations": integrations}
    )


async def put_enterprise(request: web.Request) -> web.Response:
    number = _enterprise(request)
    body = await _json_object(request)
    unknown = sorted(set(body) - {"name", "settings"})
    if unknown:
        return error(400, f"unknown field {unknown[0]!r}", unknown[0])
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > NAME_MAX:
        return error(400, f"name must be a string of at most {NAME_MAX} characters", "name")
    settings = body.get("settings")
    if settings is not None:
        if not isinstance(settings, dict):
            return error(400, "settings must be an object", "settings")
        for key, value in settings.items():
            if key not in enterprises.SETTINGS_DEFAULTS:
                return error(400, f"unknown setting {key!r}", f"settings.{key}")
            if not isinstance(value, type(enterprises.SETTINGS_DEFAULTS[key])):
                return error(
                    400, f"{key} must be a {type(enterprises.SETTINGS_DEFAULTS[key]).__name__}", f"settings.{key}"
                )
    row = await enterprises.put(request.config_dict[keys.POOL], number, name.strip(), settings)
    return web.json_response(
        {"number": row["number"], "name": row["name"], "settings": {**enterprises.SETTINGS_DEFAULTS, **row["settings"]}}
    )


async def get_integration(request: web.Request) -> web.Response:
    number, crm = _enterprise(request), _crm(request)
    pool = request.config_dict[keys.POOL]
    if await enterprises.get(pool, number) is None:
        return error(404, f"no enterprise {number}")
    stored = await enterprises.get_integration(pool, number, crm)
    return web.json_response(enterprises.masked(request.config_dict[keys.SECRETS], crm, stored or {}))


async def put_integration(request: web.Request) -> web.Response:
    number, crm = _enterprise(request), _crm(request)
    body = await _json_object(request)
    box = request.config_dict[keys.SECRETS]
    pool = request.config_dict[keys.POOL]
    if await enterprises.get(pool, number) is None:
        return error(404, f"no enterprise {number}")
    submitted = enterprises.unmask(box, crm, body, await enterprises.get_integration(pool, number, crm))
    connector = request.config_dict[keys.INTEGRATIONS].connectors.get(crm)
    if connector is not None:
        try:
            submitted = connector.settings_json(connector.parse_settings(submitted))
        except ValueError as exc:
            field = getattr(exc, "field", None)
            return error(400, getattr(exc, "message", None) or str(exc), f"{field}" if field else None)
    try:
        stored = await enterprises.put_integration(pool, box, number, crm, submitted)
    except enterprises.NotFound:
        return error(404, f"no enterprise {number}")
    return web.json_response(enterprises.masked(box, crm, stored))


def add_routes(api: web.Application) -> None:
    api.router.add_get("/enterprises/{number}", get_enterprise)
    api.router.add_put("/enterprises/{number}", put_enterprise)
    api.router.add_get("/enterprises/{number}/integrations/{crm}", get_integration)
    api.router.add_put("/enterprises/{number}/integrations/{crm}", put_integration)
