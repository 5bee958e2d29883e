"""A fake amoCRM v4 account (crm-api.md Part B and checklist C) over real loopback HTTP.

    async with FakeAmoCrm() as amo:
        amo.add_contact("+375291234567", responsible_user_id=7)
        code = amo.issue_code()            # what a private integration's admin copies
        ...
        assert amo.calls[0]["phone"] == "+375291234567"

It rejects what the real service rejects: a missing/expired bearer token (401 problem), a reused refresh
token (401 "Token has been revoked"), more than 7 requests per second (429, plain text; after
`block_after` violations every request gets an nginx 403 page), calls without direction/duration/source/
phone, a duplicate unsorted `uniq`. An empty search or unknown id answers 204 with no body. A call whose
number matches no contact (last 10 digits) is silently not saved.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
from aiohttp import web

from tests.fakes import amocrm_rules as rules

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN = web.RequestKey("admin", bool)
PROBLEM = "application/problem+json"
HAL = "application/hal+json"
OAUTH_PROBLEM = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"


def digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def last10(phone: str) -> str:
    return digits(phone)[-10:]


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    body = {"title": title, "type": f"https://httpstatus.es/{status}", "status": status, "detail": detail, **extra}
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type=PROBLEM)


def validation(errors: list[tuple[str, str, str]]) -> web.Response:
    """errors: (request_id, path, detail)."""
    by_rid: dict[str, list[dict[str, str]]] = {}
    for rid, path, detail in errors:
        by_rid.setdefault(rid, []).append(
            {"code": "NotSupportedChoice" if "choice" in detail else "InvalidType", "path": path, "detail": detail}
        )
    return problem(
        400,
        "Bad Request",
        "Request validation failed",
        **{"validation-errors": [{"request_id": k, "errors": v} for k, v in by_rid.items()]},
    )


def hal(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type=HAL)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    status: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    path: str | None  # None: whatever request comes next
    status: int
    body: Any
    retry_after: str | None


@dataclass
class _Token:
    expires_at: float
    admin: bool = True


class FakeAmoCrm:
    def __init__(
        self,
        *,
        client_id: str = "5f2b8d9e-1c3a-4b7e-9f00-aa11bb22cc33",
        client_secret: str = "Sx9kT2mQ7vW4yZ1aB8cD3eF6gH0jK5lN",
        rate: float | None = 7.0,
        block_after: int | None = None,
        access_ttl: int = 86400,
        account_id: int = 28805383,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = ""  # the integration's registered Redirect URI
        self.rate = rate
        self.block_after = block_after
        self.access_ttl = access_ttl
        self.account_id = account_id
        self.current_user_id = 1
        # answer the ids of made tasks and unsorted items as digit strings: those answer examples are UNCONFIRMED
        # (crm-api.md §B7, §B8), and the client must take either spelling
        self.string_ids = False
        self.hal_links = True  # False: lists answer without `_links` (their keys are UNCONFIRMED)
        self.requests: list[Recorded] = []
        self.access: dict[str, _Token] = {}
        self.refresh: dict[str, bool] = {}  # refresh token -> still usable
        self.codes: set[str] = set()
        self.revoked_refresh_uses = 0
        self.refreshes = 0
        self.violations = 0
        self.blocked = False
        self.contacts: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.dropped_calls: list[dict[str, Any]] = []
        self.popups: list[dict[str, Any]] = []
        self.unsorted: list[dict[str, Any]] = []
        self.tasks: dict[int, dict[str, Any]] = {}
        self.users = [
            {
                "id": 1,
                "name": "Admin",
                "email": "admin@example.com",
                "lang": "ru",
                "rights": {"is_admin": True, "is_active": True},
            }
        ]
        self.pipelines = [
            {
                "id": 3001,
                "name": "Sales",
                "sort": 1,
                "is_main": True,
                "is_unsorted_on": True,
                "is_archive": False,
                "account_id": account_id,
                "_embedded": {
                    "statuses": [
                        {"id": 40001, "name": "Unsorted", "pipeline_id": 3001},
                        {"id": 40002, "name": "First contact", "pipeline_id": 3001},
                        {"id": 142, "name": "Won", "pipeline_id": 3001},
                        {"id": 143, "name": "Lost", "pipeline_id": 3001},
                    ]
                },
            }
        ]
        self.on_token_answer: Callable[[], Awaitable[None]] | None = None  # runs after a refresh rotated
        self._ids = itertools.count(100001)
        self._failures: list[_Failure] = []
        self._losing: dict[str, int] = {}  # path -> answers still to lose
        self.lost_answers = 0
        self._bucket = float(rate or 0)
        self._stamp = time.monotonic()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/oauth", self._consent)
        app.router.add_post("/oauth2/access_token", self._token)
        app.router.add_get("/api/v4/account", self._account)
        app.router.add_get("/api/v4/users", self._users)
        app.router.add_get("/api/v4/leads/pipelines", self._pipelines)
        for entity in ("leads", "contacts", "companies"):  # plain paths: aiohttp prefers them to .../{id}
            app.router.add_get(f"/api/v4/{entity}/notes", self._notes)
        app.router.add_get("/api/v4/contacts", self._contacts)
        app.router.add_get("/api/v4/contacts/{id}", self._contact)
        app.router.add_get("/api/v4/leads", self._lead_list)
        app.router.add_get("/api/v4/leads/{id}", self._lead)
        app.router.add_post("/api/v4/calls", self._calls)
        app.router.add_post("/api/v2/events", self._events)
        app.router.add_post("/api/v4/leads/unsorted/sip", self._unsorted)
        app.router.add_post("/api/v4/leads/complex", self._complex)
        app.router.add_post("/api/v4/tasks", self._tasks)
        app.router.add_get("/api/v4/tasks", self._task_list)
        app.router.add_get("/api/v4/tasks/{id}", self._task)
        app.router.add_patch("/api/v4/tasks/{id}", self._task_edit)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAmoCrm:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def netloc(self) -> str:
        return self.url.split("://", 1)[1]

    # -- knobs ---------------------------------------------------------------------------------

    def issue_code(self) -> str:
        code = "def" + secrets.token_hex(40)
        self.codes.add(code)
        return code

    def issue_tokens(self) -> dict[str, Any]:
        """A fresh access/refresh pair, as the token endpoint answers a code or a refresh."""
        access, refresh = "acc." + secrets.token_urlsafe(48), "ref." + secrets.token_urlsafe(48)
        self.access[access] = _Token(time.time() + self.access_ttl)
        self.refresh[refresh] = True
        return {
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "access_token": access,
            "refresh_token": refresh,
            "server_time": int(time.time()),
        }

    def issue_long_lived(self, days: int = 365, admin: bool = True) -> str:
        exp = int(time.time()) + days * 86400
        token = jwt.encode(
            {"exp": exp, "account_id": self.account_id, "jti": secrets.token_hex(8)},
            "fake-amo-signing-key-of-32-bytes!!",
            algorithm="HS256",
        )
        self.access[token] = _Token(exp, admin)
        return token

    def expire_access_tokens(self) -> None:
        for token in self.access.values():
            token.expires_at = 0.0

    def revoke_access(self, token: str) -> None:
        self.access.pop(token, None)

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        body: Any = None,
        retry_after: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next n requests get `status` with `body` (a dict: problem JSON; a str: HTML; None: a generic
        problem). With `path`: the next n requests to that route, authenticated, in place of its handler."""
        self._failures.extend(_Failure(path, status, body, retry_after) for _ in range(n))

    def add_contact(
        self, phone: str, *, name: str = "Customer", responsible_user_id: int = 1, lead_ids: tuple[int, ...] = ()
    ) -> int:
        cid = next(self._ids)
        self.contacts[cid] = {
            "id": cid,
            "name": name,
            "responsible_user_id": responsible_user_id,
            "account_id": self.account_id,
            "custom_fields_values": [
                {
                    "field_id": 1,
                    "field_code": "PHONE",
                    "field_name": "Phone",
                    "values": [{"value": phone, "enum_code": "WORK"}],
                }
            ],
            "_embedded": {"leads": [{"id": i} for i in lead_ids], "tags": [], "companies": []},
        }
        return cid

    def add_lead(
        self,
        contact_id: int | None,
        *,
        name: str = "",
        status_id: int = 40002,
        responsible_user_id: int | None = None,
        created_at: int | None = None,
    ) -> int:
        """A lead in the main pipeline, of `contact_id` when given; `status_id` 142 (won) or 143 (lost) closes it."""
        data: dict[str, Any] = {"name": name, "status_id": status_id}
        if responsible_user_id is not None:
            data["responsible_user_id"] = responsible_user_id
        if created_at is not None:
            data["created_at"] = created_at
        return self._new_lead(data, contact_id)

    def complete_task(self, task_id: int) -> None:
        self.tasks[task_id]["is_completed"] = True

    def requests_to(self, path: str, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def api_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/api/")]

    # -- plumbing ------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(request.method, request.path, dict(request.query), body, dict(request.headers))
        self.requests.append(record)
        response = await self._answer(request, handler)
        record.status = response.status
        return response

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.blocked:
            return web.Response(
                status=403,
                content_type="text/html",
                text="<html><head><title>403 Forbidden</title></head><body><center><h1>403 "
                "Forbidden</h1></center><hr><center>nginx</center></body></html>",
            )
        if self.rate is not None and not self._take():
            self.violations += 1
            if self.block_after is not None and self.violations >= self.block_after:
                self.blocked = True
            return web.Response(status=429, text="Too Many Requests", content_type="text/plain")
        failure = self._take_failure(None)
        if failure is not None:
            return failure
        if request.path.startswith("/api/"):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            known = self.access.get(token.strip()) if scheme.lower() == "bearer" else None
            if known is None or known.expires_at <= time.time():
                return problem(401, "Unauthorized", "Unauthorized")
            request[ADMIN] = known.admin
        if request.match_info.http_exception is not None:
            return problem(request.match_info.http_exception.status, "Not Found", "Route not found")
        refused = self._malformed(request)
        if refused is not None:
            return refused
        failure = self._take_failure(request.path)
        if failure is not None:
            return failure
        response = await handler(request)
        if self._losing.get(request.path):
            self._losing[request.path] -= 1
            self.lost_answers += 1
            assert request.transport is not None
            request.transport.abort()  # processed; the answer never leaves
        return response

    def _malformed(self, request: web.Request) -> web.Response | None:
        """§B1: a body is JSON sent as application/json (the token endpoint's too, §B3.2); a list's `limit` is at
        most 250. What the real one answers a form body is not documented: a 400 problem here."""
        if request.method in ("POST", "PATCH") and request.content_type != rules.JSON_TYPE:
            if request.path == "/oauth2/access_token":
                return _oauth_problem(400, f"Content-Type must be {rules.JSON_TYPE}")
            return problem(400, "Bad Request", f"Content-Type must be {rules.JSON_TYPE}")
        if request.method == "GET" and request.path.startswith("/api/"):
            errors = rules.list_query(request.query)
            if errors:
                return validation([("0", path, detail) for path, detail in errors])
        return None

    def lose_answers(self, n: int, path: str) -> None:
        """The next n requests to `path` are processed as usual, and then the connection is cut instead of
        answering: the client cannot know whether they were (a timeout or a reset after sending)."""
        self._losing[path] = self._losing.get(path, 0) + n

    async def _notes(self, request: web.Request) -> web.Response:
        """GET /api/v4/{entity}/notes: the call notes that `calls` and unsorted items made (params.uniq),
        filtered by filter[note_type] and filter[updated_at][from]."""
        entity = {"leads": "lead", "contacts": "contact", "companies": "company"}[request.path.split("/")[3]]
        types = set(request.query.getall("filter[note_type]", []) + request.query.getall("filter[note_type][]", []))
        since = int(request.query.get("filter[updated_at][from]", "0") or 0)
        notes = []
        for call in self.calls:
            note_type = "call_in" if call.get("direction") == "inbound" else "call_out"
            if call.get("entity_type") != entity or (types and note_type not in types) or call.get("at", 0) < since:
                continue
            notes.append(
                {
                    "id": call.get("id", 0),
                    "entity_id": call["entity_id"],
                    "note_type": note_type,
                    "updated_at": call.get("at", 0),
                    "params": {"uniq": call.get("uniq"), "duration": call.get("duration"), "phone": call.get("phone")},
                }
            )
        if not notes:
            return web.Response(status=204)
        return hal({"_page": 1, "_embedded": {"notes": notes}})

    def _take_failure(self, path: str | None) -> web.Response | None:
        """The first injected failure meant for `path` (None: for any request), as its response."""
        found = next((f for f in self._failures if f.path == path), None)
        if found is None:
            return None
        self._failures.remove(found)
        headers = {"Retry-After": found.retry_after} if found.retry_after else None
        if isinstance(found.body, str):
            return web.Response(status=found.status, text=found.body, content_type="text/html", headers=headers)
        resp = (
            problem(found.status, "Error", "Injected failure")
            if found.body is None
            else web.Response(status=found.status, text=json.dumps(found.body), content_type=PROBLEM)
        )
        if headers:
            resp.headers.update(headers)
        return resp

    def _take(self) -> bool:
        assert self.rate is not None
        now = time.monotonic()
        self._bucket = min(self.rate, self._bucket + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._bucket >= 1:
            self._bucket -= 1
            return True
        return False

    # -- OAuth ---------------------------------------------------------------------------------

    async def _consent(self, request: web.Request) -> web.Response:
        if request.query.get("client_id") != self.client_id:
            return web.Response(status=400, text="unknown client_id")
        params = {"code": self.issue_code(), "referer": self.netloc}
        if "state" in request.query:
            params["state"] = request.query["state"]
        raise web.HTTPFound(f"{self.redirect_uri}?{urlencode(params)}")

    async def _token(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _oauth_problem(400, "Request body is not JSON")
        if not isinstance(body, dict):
            return _oauth_problem(400, "Request body is not an object")
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return _oauth_problem(401, "Client authentication failed", hint="Client authentication failed")
        grant = body.get("grant_type")
        # §B3.2: redirect_uri is a field of both grants (refresh included) and must be the registered one
        if grant in ("authorization_code", "refresh_token") and not isinstance(body.get("redirect_uri"), str):
            return _oauth_problem(400, "redirect_uri is missing", hint="Check the `redirect_uri` parameter")
        if self.redirect_uri and body.get("redirect_uri") != self.redirect_uri:
            return _oauth_problem(400, "redirect_uri mismatch", hint="Invalid redirect_uri")
        if grant == "authorization_code":
            code = body.get("code")
            if code not in self.codes:
                return _oauth_problem(400, "Authorization code is invalid", hint="Authorization code has been revoked")
            self.codes.discard(code)
            return web.json_response(self.issue_tokens())
        if grant == "refresh_token":
            token = body.get("refresh_token")
            if token not in self.refresh:
                return _oauth_problem(401, "Refresh token is invalid", hint="Cannot decrypt the refresh token")
            if not self.refresh[token]:
                self.revoked_refresh_uses += 1
                return _oauth_problem(
                    401, "В запросе отсутствует ряд параметров или параметры невалидны", hint="Token has been revoked"
                )
            self.refresh[token] = False
            self.refreshes += 1
            pair = self.issue_tokens()
            if self.on_token_answer is not None:
                await self.on_token_answer()
            return web.json_response(pair)
        return _oauth_problem(400, "Unsupported grant type", hint="Check the `grant_type` parameter")

    # -- reads ---------------------------------------------------------------------------------

    async def _account(self, request: web.Request) -> web.Response:
        return hal(
            {
                "id": self.account_id,
                "name": "Test account",
                "subdomain": "test",
                "current_user_id": self.current_user_id,
                "country": "BY",
                "currency": "BYN",
                "is_unsorted_on": True,
                "is_technical_account": False,
            }
        )

    async def _users(self, request: web.Request) -> web.Response:
        if not request[ADMIN]:
            return problem(403, "Forbidden", "Access denied")
        # §B1 lists: `page` from 1, `limit` (50 unless given); HAL `_links.next` while more follow; 204 past the end
        limit, page = int(request.query.get("limit", "50")), int(request.query.get("page", "1"))
        shown = self.users[(page - 1) * limit : page * limit]
        if not shown:
            return web.Response(status=204)
        links = {"self": {"href": f"{self.url}/api/v4/users?limit={limit}&page={page}"}}
        if page * limit < len(self.users):
            links["next"] = {"href": f"{self.url}/api/v4/users?limit={limit}&page={page + 1}"}
        if not self.hal_links:  # the `_links` keys are UNCONFIRMED (crm-api.md §B1): a client must do without
            return hal({"_page": page, "_embedded": {"users": shown}})
        return hal({"_page": page, "_links": links, "_embedded": {"users": shown}})

    async def _pipelines(self, request: web.Request) -> web.Response:
        return hal({"_total_items": len(self.pipelines), "_embedded": {"pipelines": self.pipelines}})

    def _visible(self) -> list[dict[str, Any]]:
        return [c for c in self.contacts.values() if not c.get("_unsorted")]

    async def _contacts(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        found = []
        for contact in self._visible():
            phones = [digits(v["value"]) for f in contact["custom_fields_values"] for v in f["values"]]
            qd = digits(query)
            if (len(qd) >= 5 and any(qd in p for p in phones)) or (query and query.lower() in contact["name"].lower()):
                found.append(contact)
        if not found:
            return web.Response(status=204)
        with_leads = "leads" in request.query.get("with", "").split(",")
        return hal({"_page": 1, "_embedded": {"contacts": [self._shown(c, with_leads) for c in found]}})

    def _shown(self, contact: dict[str, Any], with_leads: bool) -> dict[str, Any]:
        out = {k: v for k, v in contact.items() if not k.startswith("_")}
        embedded = dict(contact["_embedded"])
        if not with_leads:
            embedded.pop("leads", None)
        out["_embedded"] = embedded
        return out

    async def _contact(self, request: web.Request) -> web.Response:
        contact = self.contacts.get(_int(request.match_info["id"]))
        if contact is None or contact.get("_unsorted"):
            return web.Response(status=204)
        return hal(self._shown(contact, True))

    async def _lead_list(self, request: web.Request) -> web.Response:
        """GET /api/v4/leads with `filter[id]` (one id, or a list as `filter[id][]` / `filter[id][N]`, as PHP's
        http_build_query writes it) and `limit` <= 250 (§B1); 204 when none match."""
        try:
            limit = int(request.query.get("limit", "50"))
            wanted = {
                int(v) for k, v in request.query.items() if k == "filter[id]" or re.fullmatch(r"filter\[id\]\[\d*\]", k)
            }
        except ValueError:
            return validation([("0", "filter.id", "This value should be of type int.")])
        if not 1 <= limit <= 250:
            return validation([("0", "limit", "This value should be between 1 and 250.")])
        found = [lead for lid, lead in sorted(self.leads.items()) if not wanted or lid in wanted][:limit]
        if not found:
            return web.Response(status=204)
        return hal({"_page": 1, "_embedded": {"leads": found}})

    async def _lead(self, request: web.Request) -> web.Response:
        lead = self.leads.get(_int(request.match_info["id"]))
        if lead is None:
            return web.Response(status=204)
        return hal(lead)

    async def _task_list(self, request: web.Request) -> web.Response:
        """GET /api/v4/tasks with filter[entity_type], filter[entity_id], filter[responsible_user_id] and
        filter[is_completed] (0/1); 204 when none match."""
        q = request.query
        found = [
            t
            for t in self.tasks.values()
            if ("filter[entity_type]" not in q or t.get("entity_type") == q["filter[entity_type]"])
            and ("filter[entity_id]" not in q or str(t.get("entity_id")) == q["filter[entity_id]"])
            and (
                "filter[responsible_user_id]" not in q
                or str(t.get("responsible_user_id")) == q["filter[responsible_user_id]"]
            )
            and ("filter[is_completed]" not in q or int(bool(t["is_completed"])) == int(q["filter[is_completed]"]))
        ]
        if not found:
            return web.Response(status=204)
        return hal({"_page": 1, "_embedded": {"tasks": found}})

    def _shown_id(self, value: int) -> int | str:
        return str(value) if self.string_ids else value

    async def _task(self, request: web.Request) -> web.Response:
        task = self.tasks.get(_int(request.match_info["id"]))
        return hal(task) if task is not None else web.Response(status=204)

    async def _task_edit(self, request: web.Request) -> web.Response:
        """PATCH /api/v4/tasks/{id} (amocrm-api-php TaskModel: `is_completed` bool, `result` {text})."""
        task = self.tasks.get(_int(request.match_info["id"]))
        if task is None:
            return web.Response(status=404)
        try:
            change = await request.json()
        except ValueError:
            return web.json_response({"title": "Bad Request", "status": 400}, status=400)
        bad = not isinstance(change, dict) or (
            "is_completed" in change and not isinstance(change["is_completed"], bool)
        )
        result = change.get("result") if isinstance(change, dict) else None
        if bad or (result is not None and not (isinstance(result, dict) and isinstance(result.get("text"), str))):
            return web.json_response(
                {"title": "Bad Request", "status": 400, "validation-errors": [{"errors": [{"detail": "invalid"}]}]},
                status=400,
                content_type="application/problem+json",
            )
        task.update(change)
        return hal({"id": task["id"], "updated_at": int(time.time())})

    # -- writes --------------------------------------------------------------------------------

    async def _array(self, request: web.Request, limit: int = 250) -> tuple[list[dict[str, Any]], web.Response | None]:
        try:
            body = await request.json()
        except ValueError:
            return [], problem(400, "Bad Request", "Request body is not JSON")
        if not isinstance(body, list) or not body or not all(isinstance(i, dict) for i in body):
            return [], problem(400, "Bad Request", "The request body must be a non-empty array of objects")
        if len(body) > limit:
            return [], problem(400, "Bad Request", f"At most {limit} items per request")
        return body, None

    def _matching(self, phone: str) -> list[dict[str, Any]]:
        key = last10(phone)
        return [
            c
            for c in self._visible()
            if key and any(last10(v["value"]) == key for f in c["custom_fields_values"] for v in f["values"])
        ]

    async def _events(self, request: web.Request) -> web.Response:
        """crm-api.md §B6: `{"add": [{"type": "phone_call", "phone_number": ..., "users": [ids]}]}` -> 202."""
        try:
            body = await request.json()
        except ValueError:
            return problem(400, "Bad Request", "Request body is not JSON")
        items = body.get("add") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return problem(400, "Bad Request", "add: This value should not be blank.")
        for item in items:
            if (
                not isinstance(item, dict)
                or item.get("type") != "phone_call"
                or not isinstance(item.get("phone_number"), str)
            ):
                return problem(400, "Bad Request", "type and phone_number are required")
            users = item.get("users")
            if users is not None and (not isinstance(users, list) or not all(isinstance(u, int) for u in users)):
                return problem(400, "Bad Request", "users must be an array of user ids")
        self.popups.extend(items)
        return web.json_response({"_embedded": {"items": [{"status": "ok"} for _ in items]}}, status=202)

    async def _calls(self, request: web.Request) -> web.Response:
        items, error = await self._array(request, 50)
        if error is not None:
            return error
        errors = _item_errors(items, rules.check_call)  # §B5
        if errors:
            return validation(errors)
        created = []
        for i, call in enumerate(items):
            matches = self._matching(call["phone"])
            if not matches:
                self.dropped_calls.append(call)  # "the call will not be added"
                continue
            contact = matches[0]
            cid = next(self._ids)
            self.calls.append(
                {**call, "id": cid, "entity_id": contact["id"], "entity_type": "contact", "at": int(time.time())}
            )
            created.append(
                {
                    "id": cid,
                    "entity_id": contact["id"],
                    "entity_type": "contact",
                    "account_id": self.account_id,
                    "request_id": str(call.get("request_id", i)),
                    "_embedded": {"entity": {"id": contact["id"]}},
                }
            )
        return hal({"_total_items": len(created), "errors": [], "_embedded": {"calls": created}})

    def _new_contact(self, data: dict[str, Any], *, unsorted: bool) -> int:
        cid = next(self._ids)
        self.contacts[cid] = {
            "id": cid,
            "name": data.get("name") or "Contact",
            "responsible_user_id": data.get("responsible_user_id", self.current_user_id),
            "account_id": self.account_id,
            "custom_fields_values": data.get("custom_fields_values") or [],
            "_embedded": {"leads": [], "tags": [], "companies": []},
        }
        if unsorted:
            self.contacts[cid]["_unsorted"] = True
        return cid

    def _new_lead(self, data: dict[str, Any], contact_id: int | None) -> int:
        lid = next(self._ids)
        self.leads[lid] = {
            "id": lid,
            "name": data.get("name", ""),
            "pipeline_id": data.get("pipeline_id", 3001),
            "status_id": data.get("status_id", 40002),
            "responsible_user_id": data.get("responsible_user_id", self.current_user_id),
            "created_at": data.get("created_at", int(time.time())),
            "_embedded": {
                "contacts": [{"id": contact_id}] if contact_id else [],
                "tags": (data.get("_embedded") or {}).get("tags", []),
            },
        }
        if contact_id:
            self.contacts[contact_id]["_embedded"]["leads"].append({"id": lid})
        return lid

    async def _unsorted(self, request: web.Request) -> web.Response:
        items, error = await self._array(request, 50)
        if error is not None:
            return error
        errors = _item_errors(items, rules.check_unsorted)  # §B7
        for i, item in enumerate(items):
            meta = item.get("metadata")
            if not isinstance(meta, dict) or not meta.get("uniq"):
                continue
            if any(u["metadata"].get("uniq") == meta["uniq"] for u in self.unsorted):  # §B7: no second time
                errors.append((str(item.get("request_id", i)), "metadata.uniq", "This unsorted already exists."))
        if errors:
            return validation(errors)
        answer = []
        for i, item in enumerate(items):
            embedded = item.get("_embedded") or {}
            contacts = embedded.get("contacts") or [{}]
            cid = self._new_contact(contacts[0], unsorted=True)
            lid = self._new_lead((embedded.get("leads") or [{}])[0] | {"status_id": 40001}, cid)
            uid = secrets.token_hex(16)
            self.unsorted.append({**item, "uid": uid, "lead_id": lid, "contact_id": cid})
            if item["metadata"].get("is_call_event_needed", True):
                self.calls.append(
                    {
                        "via": "unsorted",
                        "direction": "inbound",
                        "entity_type": "lead",
                        "at": int(time.time()),
                        "uniq": item["metadata"].get("uniq"),
                        "phone": item["metadata"].get("from"),
                        "entity_id": lid,
                    }
                )
            answer.append(
                {
                    "uid": uid,
                    "request_id": str(item.get("request_id", i)),
                    "_embedded": {"leads": [{"id": self._shown_id(lid)}], "contacts": [{"id": self._shown_id(cid)}]},
                }
            )
        return hal({"_total_items": len(answer), "_embedded": {"unsorted": answer}})

    def accept_unsorted(self, uid: str) -> None:
        for item in self.unsorted:
            if item["uid"] == uid:
                self.contacts[item["contact_id"]].pop("_unsorted", None)

    async def _complex(self, request: web.Request) -> web.Response:
        items, error = await self._array(request, 50)
        if error is not None:
            return error
        errors = _item_errors(items, rules.check_complex)  # §B8
        if errors:
            return validation(errors)
        out = []
        for i, lead in enumerate(items):
            contacts = (lead.get("_embedded") or {}).get("contacts") or []
            cid = self._new_contact(contacts[0], unsorted=False) if contacts else None
            lid = self._new_lead(lead, cid)
            out.append(
                {
                    "id": lid,
                    "contact_id": cid,
                    "company_id": None,
                    "request_id": [str(lead.get("request_id", i))],
                    "merged": False,
                }
            )
        return web.json_response(out)

    async def _tasks(self, request: web.Request) -> web.Response:
        items, error = await self._array(request)
        if error is not None:
            return error
        errors = _item_errors(items, rules.check_task)  # §B8
        if errors:
            return validation(errors)
        out = []
        for i, task in enumerate(items):
            tid = next(self._ids)
            self.tasks[tid] = {
                **task,
                "id": tid,
                "is_completed": False,
                "responsible_user_id": task.get("responsible_user_id", self.current_user_id),
            }
            out.append({"id": self._shown_id(tid), "request_id": str(task.get("request_id", i))})
        return hal({"_embedded": {"tasks": out}})

    # -- driving our endpoints -----------------------------------------------------------------

    async def send_webhook(self, url: str, fields: dict[str, str]) -> tuple[int, str]:
        """An account webhook: a form-encoded PHP-bracket body, no signature (§B9)."""
        async with aiohttp.ClientSession() as session, session.post(url, data=fields) as resp:
            return resp.status, await resp.text()


def _item_errors(
    items: list[dict[str, Any]], check: Callable[[dict[str, Any]], rules.Problems]
) -> list[tuple[str, str, str]]:
    """(request_id, path, detail) of every failing item; an item without request_id is named by its index."""
    return [
        (str(item.get("request_id", i)), path, detail) for i, item in enumerate(items) for path, detail in check(item)
    ]


def _int(value: str) -> int:
    return int(value) if value.isdigit() else -1


def _oauth_problem(status: int, detail: str, *, hint: str | None = None) -> web.Response:
    body: dict[str, Any] = {"title": "Некорректный запрос", "type": OAUTH_PROBLEM, "status": status, "detail": detail}
    if hint:
        body["hint"] = hint
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type=PROBLEM)
