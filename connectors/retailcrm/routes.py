"""The URLs RetailCRM calls on us (crm-api.md §A8): click-to-call, user status, module activity.

They live on the agent's root application, not under /api/: RetailCRM sends no bearer token. The account is
identified by the module `clientId` (long, random, compared in constant time); an unknown one gets 403 and
changes nothing. Each accepts the GET query and the POST form alike and answers RetailCRM's envelope:
`{"success": true}` or `{"success": false, "errorMsg": "..."}`. Every callback of a known account is in
integration_logs.

What the routes need of the agent (its pool, the secrets at rest, click-to-call) is handed in as `Deps` by the
composition root when it mounts them, typed by connectors.base; like the rest of the connector, this module
imports of the agent only its log masking.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from agent.life.masking import mask_data
from connectors.base import CallNotPlaced, ClickToCall, Pool, Secrets
from connectors.retailcrm import store as retailcrm_store
from connectors.retailcrm.callbacks import (
    Activity,
    CallbackError,
    MakeCall,
    UserStatusChange,
    parse_activity,
    parse_make_call,
    parse_user_status,
)

log = logging.getLogger(__name__)

MAKE_CALL = "/retailcrm/make-call"
USER_STATUS = "/retailcrm/user-status"
ACTIVITY = "/retailcrm/activity"  # relative to baseUrl (= [agent] public_url), as actions.activity wants


@dataclass(frozen=True, slots=True)
class Deps:
    """What the callbacks need of the agent."""

    pool: Pool
    secrets: Secrets
    click_to_call: ClickToCall


DEPS = web.AppKey("retailcrm_callbacks", Deps)


def answer(status: int, error: str | None = None) -> web.Response:
    body: dict[str, Any] = {"success": True} if error is None else {"success": False, "errorMsg": error}
    return web.json_response(body, status=status)


async def _params(request: web.Request) -> dict[str, str]:
    params = {k: v for k, v in request.query.items()}
    if request.method == "POST":
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


async def _account(request: web.Request, client_id: str) -> retailcrm_store.Account | None:
    deps = request.config_dict[DEPS]
    account = await retailcrm_store.account_by_client_id(deps.pool, deps.secrets, client_id)
    if account is None:
        log.warning("RetailCRM callback %s with an unknown clientId from %s", request.path, request.remote)
    return account


async def _log(
    request: web.Request,
    account: retailcrm_store.Account,
    event: str,
    params: dict[str, str],
    status: int,
    error: str | None,
    started: float,
) -> None:
    secrets = (account.settings.client_id, account.settings.api_key)
    await retailcrm_store.log_exchange(
        request.config_dict[DEPS].pool,
        account.enterprise,
        event,
        mask_data({"method": request.method, "path": request.path, "params": params}, secrets),
        {"status": status, "body": {"success": error is None, **({"errorMsg": error} if error else {})}},
        ok=error is None,
        error=error,
        http_status=status,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


T = TypeVar("T")
Outcome = tuple[int, str | None]  # HTTP status, error (None: success)


def callback(
    event: str,
    parse: Callable[[dict[str, str]], T],
    handle: Callable[[web.Request, retailcrm_store.Account, T], Awaitable[Outcome]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Parse, find the account (403 if none), run `handle`, log the exchange, answer."""

    async def route(request: web.Request) -> web.Response:
        started = time.perf_counter()
        params = await _params(request)
        client_id = (params.get("clientId") or "").strip()
        account = await _account(request, client_id) if client_id else None
        if account is None:
            return answer(403, "unknown clientId")
        outcome: Outcome
        try:
            parsed = parse(params)
        except CallbackError as exc:
            outcome = (400, str(exc))
        else:
            outcome = await handle(request, account, parsed)
        status, error = outcome
        await _log(request, account, event, params, status, error, started)
        return answer(status, error)

    return route


async def _make_call(request: web.Request, account: retailcrm_store.Account, call: MakeCall) -> Outcome:
    # Only a mapped manager's phone is rung: with a leaked clientId, an arbitrary extension (an IVR, a
    # conference, an auto-answering device) would let anyone make the PBX dial out on its trunk.
    if call.code not in set(account.settings.user_extensions.values()):
        log.warning(
            "click-to-call for enterprise %s: extension %s is not mapped to a manager; refused",
            account.enterprise,
            call.code,
        )
        return 403, f"extension {call.code} is not mapped to a RetailCRM manager (the agent's Managers page)"
    try:
        await request.config_dict[DEPS].click_to_call(account.enterprise, call.code, call.phone, call.external_phone)
    except CallNotPlaced as exc:
        if exc.reason == "no_pbx":
            return 503, str(exc)
        if exc.reason == "pbx_down":
            log.warning("click-to-call for enterprise %s: the PBX link is down; not placed", account.enterprise)
            return 503, "the PBX is not connected; the call was not placed, try again later"
        return 502, f"the PBX refused the call: {exc}"
    except TimeoutError:
        return 504, "the PBX did not answer in time; the call may or may not start"
    return 200, None


async def _user_status(request: web.Request, account: retailcrm_store.Account, change: UserStatusChange) -> Outcome:
    await retailcrm_store.set_user_status(
        request.config_dict[DEPS].pool, account.enterprise, change.user_id, change.code, change.status
    )
    return 200, None


async def _activity(request: web.Request, account: retailcrm_store.Account, activity: Activity) -> Outcome:
    await retailcrm_store.set_activity(
        request.config_dict[DEPS].pool, account.enterprise, activity.active, activity.freeze, activity.system_url
    )
    log.info(
        "RetailCRM module of enterprise %s: active=%s freeze=%s", account.enterprise, activity.active, activity.freeze
    )
    return 200, None


def add_routes(app: web.Application, deps: Deps) -> None:
    """Mount the callbacks on the agent's root application (agent.app._start_http), with what they need."""
    app[DEPS] = deps
    routes = (
        (MAKE_CALL, callback("make_call", parse_make_call, _make_call)),
        (USER_STATUS, callback("user_status", parse_user_status, _user_status)),
        (ACTIVITY, callback("activity", parse_activity, _activity)),
    )
    for path, route in routes:
        app.router.add_get(path, route)
        app.router.add_post(path, route)
