"""amoCRM in the JSON config API: connection status, pasted code, long-lived token, disconnect, pipelines.

GET    /api/enterprises/{n}/integrations/amocrm/status
GET    /api/enterprises/{n}/integrations/amocrm/connect-url
POST   /api/enterprises/{n}/integrations/amocrm/code       {"code": "..."}   (private integrations)
POST   /api/enterprises/{n}/integrations/amocrm/token      {"token": "..."}  (a long-lived token)
DELETE /api/enterprises/{n}/integrations/amocrm/tokens
GET    /api/enterprises/{n}/integrations/amocrm/pipelines
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from admin.api import _enterprise, _json_object, error
from admin.crm_reads import CrmReads
from agent.delivery.integrations import Integrations
from agent.store import enterprises
from agent.web import keys
from agent.web.keys import Parts
from connectors.amocrm import oauth
from connectors.amocrm.client import AmoCrmClient
from connectors.amocrm.connector import AmoCrmConnector
from connectors.amocrm.settings import AmoCrmSettings
from connectors.base import CrmError
from connectors.retailcrm.mapping import reassign

BASE = "/enterprises/{number}/integrations/amocrm"  # on the /api/ sub-application
CODE_MAX = 2048


async def settings_of(parts: Parts, number: str) -> AmoCrmSettings | None:
    """The enterprise's amoCRM settings straight from the database (enabled or not); None if unset."""
    stored = await enterprises.get_integration(parts[keys.POOL], number, "amocrm")
    if not stored:
        return None
    connector = connector_of(parts[keys.INTEGRATIONS])
    try:
        return connector.parse_settings(parts[keys.SECRETS].decrypted("amocrm", stored))
    except ValueError:
        return None


def client_for(parts: Parts, settings: AmoCrmSettings) -> AmoCrmClient:
    return connector_of(parts[keys.INTEGRATIONS]).client(settings, parts[keys.INTEGRATIONS].http)


def connector(parts: Parts) -> AmoCrmConnector:
    return connector_of(parts[keys.INTEGRATIONS])


async def _settings_or_error(request: web.Request, number: str) -> AmoCrmSettings | web.Response:
    settings = await settings_of(request.config_dict, number)
    if settings is None:
        return error(409, "save the amoCRM settings (PUT .../integrations/amocrm) first", "amocrm")
    return settings


async def status_of(parts: Parts, number: str) -> dict[str, Any]:
    """The connection: status, reason, kind, expiry, account (asked afresh when connected), URIs."""
    amo = connector(parts)
    assert amo.tokens is not None
    tokens = await amo.tokens.get(number, fresh=True)
    settings = await settings_of(parts, number)
    body: dict[str, Any] = {"status": "not_connected", "redirect_uri": oauth.redirect_uri(amo.public_url)}
    if settings is not None:
        body["webhook_url"] = f"{amo.public_url}/amocrm/webhook/{number}/{settings.webhook_secret}"
    if tokens is None:
        return body
    body.update(tokens.public())
    body["account"] = tokens.account
    if tokens.status == "connected" and settings is not None:
        try:
            account = await client_for(parts, settings).account(number)
        except CrmError as exc:
            body["check_error"] = exc.outcome.error
            fresh = await amo.tokens.get(number, fresh=True)
            if fresh is not None:
                body.update(fresh.public())
        else:
            body["account"] = _account_info(account)
            await amo.tokens.save_account(number, body["account"])
    return body


async def status(request: web.Request) -> web.Response:
    return web.json_response(await status_of(request.config_dict, _enterprise(request)))


def _account_info(account: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "name", "subdomain", "current_user_id", "country", "currency", "is_unsorted_on")
    return {k: account[k] for k in keep if k in account}


async def connect_url(request: web.Request) -> web.Response:
    number = _enterprise(request)
    settings = await _settings_or_error(request, number)
    if isinstance(settings, web.Response):
        return settings
    if not settings.client_id or not settings.client_secret:
        return error(409, "client_id and client_secret are needed for OAuth", "client_id")
    return web.json_response(
        {
            "url": consent_link(request.config_dict, number, settings),
            "redirect_uri": oauth.redirect_uri(connector(request.config_dict).public_url),
        }
    )


def consent_link(parts: Parts, number: str, settings: AmoCrmSettings) -> str:
    """The account's consent page with a signed, single-use state naming the enterprise."""
    amo = connector(parts)
    assert amo.state_signer is not None and settings.client_id
    return oauth.consent_url(settings.host, settings.client_id, amo.state_signer.issue(number))


async def connect_with(
    parts: Parts, number: str, settings: AmoCrmSettings, host: str, code: str
) -> web.Response | None:
    """Exchange an authorization code and store the pair (callback and pasted code). None when stored."""
    amo = connector(parts)
    assert amo.tokens is not None
    if not settings.client_id or not settings.client_secret:
        return error(409, "client_id and client_secret are needed to exchange a code", "client_id")
    body = oauth.code_body(settings.client_id, settings.client_secret, code, amo.tokens.redirect_uri)
    http = amo.http_for(settings, parts[keys.INTEGRATIONS].http)
    try:
        pair, _ = await oauth.grant(http, host, body, secrets=(settings.client_secret, code))
    except oauth.OAuthError as exc:
        status = 400 if exc.failure == "rejected" else 502
        return error(status, f"amoCRM did not accept the authorization code: {exc.message}", "code")
    await amo.tokens.connect(number, host, "oauth", pair.access_token, pair.refresh_token, pair.expires_at)
    await _remember_account(parts, number, settings)
    return None


def refusal(failed: web.Response) -> str:
    """The English message of a refusal `connect_with` answered (its JSON `error`), for the pages to read with
    admin/said.py (the admin page's pasted code, the OAuth callback's result page)."""
    try:
        message = json.loads(failed.text or "{}").get("error")
    except (ValueError, AttributeError):
        message = None
    return str(message or failed.reason or failed.status)[:500]


async def _remember_account(parts: Parts, number: str, settings: AmoCrmSettings) -> None:
    amo = connector(parts)
    assert amo.tokens is not None
    try:
        account = await client_for(parts, settings).account(number)
    except CrmError:
        return
    await amo.tokens.save_account(number, _account_info(account))


async def post_code(request: web.Request) -> web.Response:
    number = _enterprise(request)
    body = await _json_object(request)
    code = body.get("code")
    if not isinstance(code, str) or not code.strip() or len(code) > CODE_MAX:
        return error(400, "code: the authorization code from the integration's Keys tab", "code")
    settings = await _settings_or_error(request, number)
    if isinstance(settings, web.Response):
        return settings
    failed = await connect_with(request.config_dict, number, settings, settings.host, code.strip())
    return failed or await status(request)


async def post_token(request: web.Request) -> web.Response:
    number = _enterprise(request)
    body = await _json_object(request)
    token = body.get("token")
    if not isinstance(token, str) or not token.strip() or len(token) > 8192:
        return error(400, "token: the long-lived token from the private integration's Keys tab", "token")
    settings = await _settings_or_error(request, number)
    if isinstance(settings, web.Response):
        return settings
    failed = await connect_token(request.config_dict, number, settings, token.strip())
    return error(400, failed, "token") if failed else await status(request)


async def connect_token(parts: Parts, number: str, settings: AmoCrmSettings, token: str) -> str | None:
    """Store a long-lived token when amoCRM accepts it; else why not (and nothing is kept)."""
    amo = connector(parts)
    assert amo.tokens is not None
    await amo.tokens.connect(number, settings.host, "long_lived", token, None, oauth.token_expiry(token))
    try:
        account = await client_for(parts, settings).account(number)
    except CrmError as exc:
        await amo.tokens.disconnect(number)  # a token that does not work is not kept
        return f"amoCRM did not accept the token: {exc.outcome.error}"
    await amo.tokens.save_account(number, _account_info(account))
    return None


async def delete_tokens(request: web.Request) -> web.Response:
    number = _enterprise(request)
    amo = connector(request.config_dict)
    assert amo.tokens is not None
    deleted = await amo.tokens.disconnect(number)
    return web.json_response({"status": "not_connected", "deleted": deleted})


async def pipelines(request: web.Request) -> web.Response:
    number = _enterprise(request)
    settings = await _settings_or_error(request, number)
    if isinstance(settings, web.Response):
        return settings
    try:
        found = await client_for(request.config_dict, settings).pipelines(number)
    except CrmError as exc:
        return error(502, f"amoCRM: {exc.outcome.error}")
    return web.json_response({"pipelines": found})


async def managers_of(parts: Parts, number: str, reads: CrmReads | None = None) -> dict[str, Any]:
    """amoCRM users with their extensions (`user_extensions`; amoCRM keeps no copy of its own); the users from
    `reads` while fresh."""
    settings = await settings_of(parts, number)
    if settings is None:
        raise LookupError("amocrm is not configured")
    client = client_for(parts, settings)
    users = await (
        reads.get("amocrm", number, "users", lambda: client.users(number)) if reads else client.users(number)
    )
    mapping = settings.user_extensions
    return {
        "managers": [
            {
                "user_id": u["id"],
                "name": u["name"],
                "email": u["email"],
                "active": u["active"],
                "extension": mapping.get(u["id"]),
                "crm_extension": None,
                "differs": False,
            }
            for u in users
        ],
        "differences": [],
        "unknown_users": sorted(set(mapping) - {u["id"] for u in users}),
        "module_error": None,
    }


async def save_mapping(parts: Parts, number: str, changes: dict[str, str | None]) -> dict[str, Any]:
    """Assign `{user_id: extension | None}` in the stored settings (one extension, one user); NOTIFY."""
    stored = await enterprises.get_integration(parts[keys.POOL], number, "amocrm")
    if not stored:
        raise LookupError("amocrm is not configured")
    box = parts[keys.SECRETS]
    current = box.decrypted("amocrm", stored)
    mapping, moves = reassign(current.get("user_extensions") or {}, changes)
    amo = connector(parts)
    updated = amo.settings_json(amo.parse_settings({**current, "user_extensions": mapping}))
    await enterprises.put_integration(parts[keys.POOL], box, number, "amocrm", updated)
    return {
        "user_extensions": mapping,
        "moved": [{"extension": m.extension, "from_user": m.from_user, "to_user": m.to_user} for m in moves],
        "sync": None,
    }


def add_routes(api: web.Application) -> None:
    api.router.add_get(BASE + "/status", status)
    api.router.add_get(BASE + "/connect-url", connect_url)
    api.router.add_post(BASE + "/code", post_code)
    api.router.add_post(BASE + "/token", post_token)
    api.router.add_delete(BASE + "/tokens", delete_tokens)
    api.router.add_get(BASE + "/pipelines", pipelines)


def connector_of(integrations: Integrations) -> AmoCrmConnector:
    """The agent's amoCRM connector, bound to the database at start (agent.parts.delivery.attach_amocrm)."""
    connector = integrations.connectors.get(AmoCrmConnector.name)
    if not isinstance(connector, AmoCrmConnector) or connector.tokens is None:
        raise RuntimeError("amoCRM is not attached")
    return connector
