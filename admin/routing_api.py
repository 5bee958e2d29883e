"""`GET/PUT /api/enterprises/{n}/routing`: the enterprise's routing rules (agent/redirect/rules.py documents them).

PUT replaces the whole document; it is validated first (400 naming the field, nothing stored) and stored
with `NOTIFY integrations_config` in the same transaction, so every agent drops its cached rules. A time may be
written `9:00` as the routing form accepts it (`rules.time_text`, the one reading of both): it is stored, and
answered, as `09:00`.
"""

from __future__ import annotations

from aiohttp import web

from admin.api import _enterprise, _json_object, error
from agent.redirect.rules import RulesError
from agent.store import enterprises
from agent.store import routing_rules as routing_store
from agent.web import keys


async def get_routing(request: web.Request) -> web.Response:
    number = _enterprise(request)
    pool = request.config_dict[keys.POOL]
    if await enterprises.get(pool, number) is None:
        return error(404, f"no enterprise {number}")
    return web.json_response(await routing_store.get_raw(pool, number))


async def put_routing(request: web.Request) -> web.Response:
    number = _enterprise(request)
    body = await _json_object(request)
    try:
        rules = await routing_store.put(request.config_dict[keys.POOL], number, body)
    except RulesError as exc:
        return error(400, exc.message, exc.field)
    except routing_store.NotFound:
        return error(404, f"no enterprise {number}")
    return web.json_response(rules.raw)  # as stored: times as HH:MM


def add_routes(api: web.Application) -> None:
    api.router.add_get("/enterprises/{number}/routing", get_routing)
    api.router.add_put("/enterprises/{number}/routing", put_routing)
