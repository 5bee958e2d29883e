"""`GET/PUT /api/enterprises/{number}/extensions`: the enterprise's internal extensions (user_internal_phones).

PUT replaces the list: `{"extensions": [{"extension": "101", "display_name": "Anna"}, ...]}`.
"""

from __future__ import annotations

from aiohttp import web

from admin.api import _enterprise, _json_object, error
from agent.ingest import discovery
from agent.ingest.link import AmiNotConnected
from agent.store import enterprises, extensions
from agent.web import keys


async def get_extensions(request: web.Request) -> web.Response:
    number = _enterprise(request)
    pool = request.config_dict[keys.POOL]
    if await enterprises.get(pool, number) is None:
        return error(404, f"no enterprise {number}")
    return web.json_response({"extensions": [e.to_json() for e in await extensions.list_for(pool, number)]})


async def put_extensions(request: web.Request) -> web.Response:
    number = _enterprise(request)
    body = await _json_object(request)
    unknown = sorted(set(body) - {"extensions"})
    if unknown:
        return error(400, f"unknown field {unknown[0]!r}", unknown[0])
    try:
        items = extensions.parse(body.get("extensions"))
    except extensions.InvalidExtensions as exc:
        return error(400, exc.message, exc.field)
    pool = request.config_dict[keys.POOL]
    if await enterprises.get(pool, number) is None:
        return error(404, f"no enterprise {number}")
    try:
        await extensions.replace(pool, number, items)
    except extensions.InvalidExtensions as exc:  # the platform's table refuses a new row
        return error(409, exc.message, exc.field)
    return web.json_response({"extensions": [e.to_json() for e in items]})


async def discover_extensions(request: web.Request) -> web.Response:
    """POST .../extensions/discover: add the extensions the enterprise's PBXs know (names kept)."""
    number = _enterprise(request)
    pool = request.config_dict[keys.POOL]
    if await enterprises.get(pool, number) is None:
        return error(404, f"no enterprise {number}")
    pipelines = [p for p in request.config_dict[keys.ORIGINATOR].pipelines.values() if p.pbx.enterprise == number]
    live = [p for p in pipelines if p.link.connected.is_set()]
    if not live:
        return error(503, "no PBX of this enterprise is connected to this agent right now")
    found: list[str] = []
    for pipeline in live:
        try:
            found += await discovery.discover(pipeline.link, pipeline.tracker.env.rules)
        except AmiNotConnected:
            continue
    current = await extensions.list_for(pool, number)
    items, added = discovery.merged(current, found)
    if added:
        try:
            await extensions.replace(pool, number, items)
        except extensions.InvalidExtensions as exc:
            return error(409, exc.message, exc.field)
    return web.json_response({"added": added, "extensions": [e.to_json() for e in items]})


def add_routes(api: web.Application) -> None:
    api.router.add_get("/enterprises/{number}/extensions", get_extensions)
    api.router.add_put("/enterprises/{number}/extensions", put_extensions)
    api.router.add_post("/enterprises/{number}/extensions/discover", discover_extensions)
