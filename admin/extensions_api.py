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
from agent.web.keys import Parts


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


class NoPbx(LookupError):
    """No PBX of the enterprise is connected to this agent: nothing to ask."""


async def discover_for(parts: Parts, number: str) -> tuple[list[str], list[extensions.Extension]]:
    """(added, the list now): the extensions the enterprise's connected PBXs know, added to its list (names
    kept). NoPbx when none is connected; InvalidExtensions when the table refuses a new row."""
    pool = parts[keys.POOL]
    pipelines = [p for p in parts[keys.ORIGINATOR].pipelines.values() if p.pbx.enterprise == number]
    live = [p for p in pipelines if p.link.connected.is_set()]
    if not live:
        raise NoPbx(number)
    found: list[str] = []
    for pipeline in live:
        try:
            found += await discovery.discover(pipeline.link, pipeline.tracker.env.rules)
        except AmiNotConnected:
            continue
    current = await extensions.list_for(pool, number)
    items, added = discovery.merged(current, found)
    if added:
        await extensions.replace(pool, number, items)
    return added, items


async def discover_extensions(request: web.Request) -> web.Response:
    """POST .../extensions/discover: add the extensions the enterprise's PBXs know (names kept)."""
    number = _enterprise(request)
    if await enterprises.get(request.config_dict[keys.POOL], number) is None:
        return error(404, f"no enterprise {number}")
    try:
        added, items = await discover_for(request.config_dict, number)
    except NoPbx:
        return error(503, "no PBX of this enterprise is connected to this agent right now")
    except extensions.InvalidExtensions as exc:
        return error(409, exc.message, exc.field)
    return web.json_response({"added": added, "extensions": [e.to_json() for e in items]})


def add_routes(api: web.Application) -> None:
    api.router.add_get("/enterprises/{number}/extensions", get_extensions)
    api.router.add_put("/enterprises/{number}/extensions", put_extensions)
    api.router.add_post("/enterprises/{number}/extensions/discover", discover_extensions)
