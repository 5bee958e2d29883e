"""What every admin view shares: the page-or-JSON answer, the chrome around a page, access checks, forms.

A view builds one dict of data (JSON-safe: strings, numbers, lists, dicts, None) and hands it to
`answer`. With `.json` on the URL (or a JSON POST) the dict is the response; otherwise it is the
template's context, merged with the chrome documented in docs/admin.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web

from admin import localtime
from admin.auth import LinkSigner, Session
from admin.i18n import LANGS, Translate
from agent.store.enterprises import NOT_REMOVED
from agent.web import keys

JINJA = web.AppKey("admin_jinja", jinja2.Environment)
LINKS = web.AppKey("admin_links", LinkSigner)
FRAME_ANCESTORS = web.AppKey[list[str]]("admin_frame_ancestors")  # extra origins allowed to frame the pages
SESSION = web.RequestKey("admin_session", Session)
LANG = web.RequestKey("admin_lang", str)
T = web.RequestKey[Translate]("admin_t")
BODY = web.RequestKey[dict[str, str]]("admin_body")

ENTERPRISE_CHARS = "A-Za-z0-9_-"


class Refused(Exception):
    """Stop a view with an error page (or a JSON error); `key` is a message-catalog key."""

    def __init__(self, status: int, key: str, field: str | None = None, **values: object) -> None:
        super().__init__(key)
        self.status, self.key, self.field, self.values = status, key, field, values


def wants_json(request: web.Request) -> bool:
    if request.match_info.get("ext") == ".json":
        return True
    return request.method == "POST" and request.content_type == "application/json"


def t(request: web.Request) -> Translate:
    return request[T]


def session(request: web.Request) -> Session:
    found: Session | None = request.get(SESSION)
    if found is None:
        raise Refused(401, "error.signin")
    return found


def root(request: web.Request) -> str:
    """The relative way back to /admin/ from this page, so the site works under any path prefix."""
    rest = request.path.removeprefix("/admin/")
    return "../" * rest.count("/")


def self_url(request: web.Request, json_suffix: bool = False) -> str:
    """This page, relative to itself (its last path segment), with or without `.json`."""
    last = request.path.rsplit("/", 1)[-1] or "./"
    last = quote(last.removesuffix(".json") + (".json" if json_suffix else ""))
    return last + (f"?{request.query_string}" if request.query_string else "")


async def accessible_enterprises(request: web.Request, who: Session) -> list[dict[str, str]]:
    pool = request.config_dict[keys.POOL]
    if who.enterprise is not None:
        name = await pool.fetchval(f"SELECT name FROM enterprises WHERE number = $1 AND {NOT_REMOVED}", who.enterprise)
        return [{"number": who.enterprise, "name": name or ""}]
    rows = await pool.fetch(f"SELECT number, name FROM enterprises WHERE {NOT_REMOVED} ORDER BY number LIMIT 1000")
    found = {r["number"]: r["name"] for r in rows}
    for number in request.config_dict[keys.CONFIG].enterprises:
        found.setdefault(number, "")
    return [{"number": n, "name": found[n]} for n in sorted(found)]


async def enterprise_of(request: web.Request) -> dict[str, str]:
    """The enterprise in the URL, when this session may see it and it exists; else 403/404."""
    number = request.match_info["number"]
    who = session(request)
    if not who.may_access(number):
        raise Refused(403, "error.other_enterprise")
    name = await request.config_dict[keys.POOL].fetchval(
        f"SELECT name FROM enterprises WHERE number = $1 AND {NOT_REMOVED}", number
    )
    if name is None and number not in request.config_dict[keys.CONFIG].enterprises:
        raise Refused(404, "error.no_enterprise", number=number)
    return {"number": number, "name": name or ""}


def require_admin(request: web.Request) -> Session:
    who = session(request)
    if not who.can_edit:
        raise Refused(403, "error.read_only")
    return who


async def chrome(request: web.Request, page: str) -> dict[str, Any]:
    who = request.get(SESSION)
    signer = request.app[LINKS]
    ctx: dict[str, Any] = {
        "t": request[T],
        "lang": request[LANG],
        "langs": LANGS,
        "root": root(request),
        "page": page,
        "json_url": self_url(request, json_suffix=True),
        "self_url": self_url(request),
        "session": None,
        "csrf_token": "",
        "switcher": [],
        "current": request.match_info.get("number"),
        "tz": ZoneInfo("UTC"),
    }
    number = ctx["current"]
    if number and who is not None and who.may_access(number):
        config = request.config_dict[keys.CONFIG]
        ctx["tz"] = await localtime.zone_for(request.config_dict[keys.POOL], number, config.agent.default_region)
    if who is not None:
        ctx["session"] = {
            "enterprise": who.enterprise,
            "role": who.role,
            "can_edit": who.can_edit,
            "is_instance": who.is_instance,
            "source": who.source,
        }
        ctx["csrf_token"] = signer.csrf(who)
        ctx["switcher"] = await accessible_enterprises(request, who)
    return ctx


async def answer(request: web.Request, template: str, data: dict[str, Any], status: int = 200) -> web.Response:
    if wants_json(request):
        return web.json_response(data, status=status, dumps=dumps)
    context = await chrome(request, template.removesuffix(".html"))
    context.update(data)
    return aiohttp_jinja2.render_template(template, request, context, app_key=JINJA, status=status)


def after_post(request: web.Request, data: dict[str, Any]) -> web.StreamResponse:
    """Post/redirect/get for forms; the result itself for JSON."""
    if wants_json(request):
        return web.json_response(data, dumps=dumps)
    raise web.HTTPSeeOther(self_url(request))


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def read_body(request: web.Request) -> dict[str, str]:
    """A form post or a JSON object, as field -> string (cached on the request)."""
    cached: dict[str, str] | None = request.get(BODY)
    if cached is not None:
        return cached
    body: dict[str, str] = {}
    if request.content_type == "application/json":
        try:
            raw = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Refused(400, "error.bad_json") from None
        if not isinstance(raw, dict):
            raise Refused(400, "error.bad_json")
        body = {str(k): _text(v) for k, v in raw.items()}
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        body = {k: v for k, v in form.items() if isinstance(v, str)}
    request[BODY] = body
    return body


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else json.dumps(value)


def encode_next(*values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


BIGINT_MAX = 2**63 - 1  # the largest id PostgreSQL's bigint holds: beyond it a query fails instead of finding none
NEXT_TEXT_MAX = 512


def bigint(text: str) -> int | None:
    """A non-negative integer id from a query or form field, or None when it is not one the database can hold."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > BIGINT_MAX:
        return None
    return int(text)


def decode_next(token: str, kinds: tuple[str, ...]) -> list[Any] | None:
    """A `next` token's values, typed by `kinds` ("time": an aware datetime, "int": a bigint id, "text"), or None
    when the token is not one we made (a crafted one is refused here, never reaches a query)."""
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(values, list) or len(values) != len(kinds):
        return None
    out: list[Any] = []
    for kind, value in zip(kinds, values, strict=True):
        if kind == "time":
            try:
                moment = datetime.fromisoformat(value) if isinstance(value, str) else None
            except ValueError:
                moment = None
            if moment is None or moment.tzinfo is None:
                return None
            out.append(moment)
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BIGINT_MAX:
                return None
            out.append(value)
        elif isinstance(value, str) and len(value) <= NEXT_TEXT_MAX:
            out.append(value)
        else:
            return None
    return out
