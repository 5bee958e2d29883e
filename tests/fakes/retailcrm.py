"""A fake RetailCRM v5 (crm-api.md Part A and checklist C) over real loopback HTTP.

async with FakeRetailCrm(api_key=KEY) as crm:
    settings = ... domain=crm.url ...
    crm.fail_next(2, status=503, retry_after=3)
    ...
    assert crm.requests[-1].json_field("event")["type"] == "in"
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes import retailcrm_rules as rules
from tests.fakes.retailcrm_tasks import Records

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
ALL_METHODS = (
    "/api/telephony/call/event",
    "/api/telephony/calls/upload",
    "/api/telephony/manager",
    "/api/integration-modules/{code}",
    "/api/integration-modules/{code}/edit",
    "/api/users",
    "/api/tasks",
    "/api/tasks/create",
    "/api/tasks/{id}",
    "/api/tasks/{id}/edit",
    "/api/customers/create",
    "/api/orders/create",
)
DEFAULT_SCOPES = ("integration_read", "integration_write", "telephony_read", "telephony_write", "user_read")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    content_type: str
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json_field(self, name: str) -> Any:
        return json.loads(self.form[name])


@dataclass
class _Failure:
    status: int
    retry_after: str | None
    body: Any


@dataclass
class _Bucket:
    rate: float
    tokens: float
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _envelope(status: int, msg: str, errors: dict[str, str] | None = None, as_list: bool = False) -> web.Response:
    body: dict[str, Any] = {"success": False, "errorMsg": msg}
    if errors:
        body["errors"] = [f"{k}: {v}" for k, v in errors.items()] if as_list else errors
    return web.json_response(body, status=status)


class FakeRetailCrm:
    def __init__(
        self,
        api_key: str = "fake-api-key-0123456789abcdef",
        *,
        credentials: list[str] | None = None,
        scopes: list[str] | None = None,
        account_exists: bool = True,
        telephony_enabled: bool = True,
        report_duplicates: bool = True,
        errors_as_list: bool = False,
        rate_limit: bool = False,
        sites: list[str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.credentials = list(ALL_METHODS if credentials is None else credentials)
        self.scopes = list(DEFAULT_SCOPES if scopes is None else scopes)
        self.account_exists = account_exists
        self.telephony_enabled = telephony_enabled
        self.report_duplicates = report_duplicates
        self.errors_as_list = errors_as_list
        self.rate_limit = rate_limit
        self.sites = list(sites or [])
        self.requests: list[Recorded] = []
        self.modules: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.calls: dict[str, dict[str, Any]] = {}
        self.uploads: list[list[dict[str, Any]]] = []
        self.lose_answers: list[str] = []  # path suffixes: the next such request is done, its answer lost (504)
        self.linked: dict[str, int] = {}  # upload externalId -> the made customer it was attached to
        self.duplicates_seen = 0  # upload items whose externalId was already stored (a redelivery)
        self.users: list[dict[str, Any]] = []
        self.managers: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
        self.known_codes: set[str] = set()
        self._failures: list[_Failure] = []
        self._hang = False
        self._release = asyncio.Event()
        self._delay = 0.0
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""
        # tasks, customers, orders (tests/fakes/retailcrm_tasks.py); a performer must be one of `users`
        self.records = Records(lambda: {str(u["id"]) for u in self.users}, self._json_field, self._invalid, _envelope)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> None:
        """Listen on loopback; `port` lets a test stop the fake and bring it back at the same URL."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/credentials", self._credentials)
        app.router.add_get("/api/api-versions", self._versions)
        app.router.add_post("/api/v5/integration-modules/{code}/edit", self._module_edit)
        app.router.add_get("/api/v5/integration-modules/{code}", self._module_get)
        app.router.add_post("/api/v5/telephony/call/event", self._event)
        app.router.add_post("/api/v5/telephony/calls/upload", self._upload)
        app.router.add_get("/api/v5/telephony/manager", self._manager)
        app.router.add_get("/api/v5/users", self._users)
        self.records.add(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeRetailCrm:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- knobs ---------------------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, *, status: int = 500, retry_after: float | str | None = None, body: Any = None
    ) -> None:
        """The next n requests get `status` (after being recorded). `body` may be a dict (JSON) or a
        str (sent as text/html); default: the envelope RetailCRM's clients expect for that status."""
        if body is None:
            msg = "Rate limit exceeded" if status in (429, 503) else "Internal Server Error"
            body = {"success": False, "errorMsg": msg}
        ra = None if retry_after is None else str(retry_after)
        self._failures.extend(_Failure(status, ra, body) for _ in range(n))

    def hang(self) -> None:
        """Accept requests but never answer (until `normal()` or `stop()`)."""
        self._hang = True
        self._release.clear()

    def slow(self, seconds: float) -> None:
        self._delay = seconds

    def normal(self) -> None:
        self._failures.clear()
        self._hang = False
        self._release.set()
        self._delay = 0.0

    def set_manager(self, phone: str, user: dict[str, Any] | None, customer: dict[str, Any] | None = None) -> None:
        """`user`: RetailCRM user fields (`id`, `firstName`, `lastName`, `code`, `status`='free'); `customer`: the
        customer with this phone (`firstName`, `lastName`, ...), answered with `details=1`. With neither, the
        number is unknown again."""
        key = rules.phone_digits(phone)
        if user is None and customer is None:
            self.managers.pop(key, None)
        else:
            self.managers[key] = (user, customer)
            if customer is not None:
                self.records.known_customers.add(str(customer.get("id")))

    def add_users(self, count: int, start_id: int = 1) -> None:
        for i in range(start_id, start_id + count):
            self.users.append(
                {
                    "id": i,
                    "firstName": f"User{i}",
                    "lastName": "Test",
                    "active": True,
                    "email": f"u{i}@example.com",
                    "isManager": True,
                    "status": "free",
                }
            )

    def requests_to(self, path_suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    # -- plumbing ------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        form: dict[str, str] = {}
        if request.content_type in FORM_TYPES:
            form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                form,
                dict(request.headers),
                request.content_type,
                body,
            )
        )
        if not self.account_exists:
            status = 405 if request.method != "GET" else 404
            return web.Response(
                status=status, content_type="text/html", text=f"<html><body><h1>{status}</h1>nginx</body></html>"
            )
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._hang:
            await self._release.wait()
        if self._failures:
            return self._failure_response(self._failures.pop(0))
        http_exc = request.match_info.http_exception
        if http_exc is not None:
            if http_exc.status == 405:
                return _envelope(405, "Method not allowed")
            return _envelope(404, "API method not found")
        key = request.headers.get("X-API-KEY") or request.query.get("apiKey") or form.get("apiKey")
        if not key:
            return _envelope(400, '"apiKey" is missing.')
        if key != self.api_key:
            return _envelope(403, 'Wrong "apiKey" value.')
        if self.rate_limit and not self._bucket(key, request.path).take():
            return _envelope(503, "Rate limit exceeded")
        route = request.match_info.route.resource
        canonical = route.canonical.replace("/api/v5/", "/api/") if route is not None else ""
        if canonical not in ("/api/credentials", "/api/api-versions") and canonical not in self.credentials:
            return _envelope(403, "Access denied.")
        response = await handler(request)
        lost = next((p for p in self.lose_answers if request.path.endswith(p)), None)
        if lost is not None:  # done, but the answer never reaches the client
            self.lose_answers.remove(lost)
            return _envelope(504, "Gateway Time-out")
        return response

    def _failure_response(self, failure: _Failure) -> web.Response:
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
        if isinstance(failure.body, str):
            return web.Response(status=failure.status, text=failure.body, content_type="text/html", headers=headers)
        return web.json_response(failure.body, status=failure.status, headers=headers)

    def _bucket(self, key: str, path: str) -> _Bucket:
        name, rate = ("telephony", 40.0) if path.startswith("/api/v5/telephony") else ("general", 10.0)
        return self._buckets.setdefault((key, name), _Bucket(rate, rate))

    async def _json_field(self, request: web.Request, name: str) -> tuple[Any, web.Response | None]:
        # post() is empty unless the body is a form, so a JSON body "is missing" the field
        raw = (await request.post()).get(name)
        if raw is None:
            return None, _envelope(400, f"Parameter '{name}' is missing")
        try:
            return json.loads(str(raw)), None
        except ValueError:
            return None, _envelope(400, "Errors in the entity format", {name: "Invalid JSON"}, self.errors_as_list)

    def _invalid(self, errors: dict[str, str]) -> web.Response:
        return _envelope(400, "Errors in the entity format", errors, self.errors_as_list)

    def _telephony_on(self) -> bool:
        if not self.modules:
            return self.telephony_enabled
        return any(m.get("active", True) for m in self.modules.values())

    # -- routes --------------------------------------------------------------------------------

    async def _credentials(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {
            "success": True,
            "scopes": self.scopes,
            "credentials": self.credentials,
            "siteAccess": "access_full",
        }
        if self.sites:
            body["sitesAvailable"] = self.sites
        return web.json_response(body)

    async def _versions(self, request: web.Request) -> web.Response:
        return web.json_response({"success": True, "versions": ["3.0", "4.0", "5.0"]})

    async def _module_edit(self, request: web.Request) -> web.Response:
        code = request.match_info["code"]
        module, error = await self._json_field(request, "integrationModule")
        if error is not None:
            return error
        errors = rules.check_module(code, module)
        if errors:
            return self._invalid(errors)
        created = code not in self.modules
        self.modules[code] = module
        telephony = (module.get("integrations") or {}).get("telephony") or {}
        user_ids = {str(u["id"]) for u in self.users}
        info: dict[str, Any] = {}
        missing_users = [
            int(c["userId"]) for c in telephony.get("additionalCodes") or [] if str(c["userId"]) not in user_ids
        ]
        if missing_users:
            info["notExistUsersIds"] = missing_users
        missing_sites = [
            p["siteCode"] for p in telephony.get("externalPhones") or [] if p["siteCode"] not in self.sites
        ]
        if missing_sites:
            info["notExistSiteCodes"] = missing_sites
        # PHP serialises an empty info object as []
        return web.json_response({"success": True, "info": info or []}, status=201 if created else 200)

    async def _module_get(self, request: web.Request) -> web.Response:
        module = self.modules.get(request.match_info["code"])
        if module is None:
            return _envelope(404, "Not found")
        return web.json_response({"success": True, "integrationModule": {**module, "native": False, "freeze": False}})

    def _codes(self) -> set[str]:
        codes = set(self.known_codes)
        for module in self.modules.values():
            for c in ((module.get("integrations") or {}).get("telephony") or {}).get("additionalCodes") or []:
                codes.add(str(c["code"]))
        return codes

    async def _event(self, request: web.Request) -> web.Response:
        event, error = await self._json_field(request, "event")
        if error is not None:
            return error
        errors = rules.check_event(event)
        if errors:
            return self._invalid(errors)
        if not self._telephony_on():
            return web.json_response({"success": "false", "errorMsg": "Telephony not enabled"})
        self.events.append(event)
        body: dict[str, Any] = {"success": True}
        known = self._codes()
        unknown = [c for c in event.get("codes") or [] if known and c not in known]
        if unknown:
            body["notExistCodes"] = unknown
        return web.json_response(body)

    async def _upload(self, request: web.Request) -> web.Response:
        calls, error = await self._json_field(request, "calls")
        if error is not None:
            return error
        errors = rules.check_calls(calls)
        if errors:
            return self._invalid(errors)
        if not self._telephony_on():
            return web.json_response(
                {"success": "false", "errorMsg": "Telephony not enabled or not supports calls upload"}
            )
        self.uploads.append(calls)
        duplicates: list[str] = []
        for call in calls:
            ext_id = call.get("externalId")
            if ext_id is not None and ext_id in self.calls:
                duplicates.append(ext_id)
                self.duplicates_seen += 1
                continue
            self.calls[ext_id or f"anon-{len(self.calls)}"] = call
            # RetailCRM attaches an uploaded call to the customer with its phone, if there is one by then
            made = self.records.customer_by_phone(rules.phone_digits(str(call.get("phone", ""))))
            if made is not None and ext_id is not None:
                self.linked[ext_id] = made["id"]
        body: dict[str, Any] = {"success": True, "processedCallsCount": len(calls) - len(duplicates)}
        if self.report_duplicates and duplicates:
            body["duplicateCalls"] = duplicates
        return web.json_response(body)

    async def _manager(self, request: web.Request) -> web.Response:
        phone = request.query.get("phone")
        if not phone:
            return _envelope(400, "Parameter 'phone' is missing")
        found = self.managers.get(rules.phone_digits(phone))
        if found is None:
            made = self.records.customer_by_phone(rules.phone_digits(phone))
            if made is None or not rules.truthy(request.query.get("details")):
                return web.json_response({"success": True})
            return web.json_response({"success": True, "customer": made})
        user, customer = found
        body: dict[str, Any] = {"success": True}
        free = user is not None and user.get("status", "free") == "free"
        if user is not None and (free or rules.truthy(request.query.get("ignoreStatus"))):
            fields = ("id", "firstName", "lastName", "patronymic", "email", "code")
            body["manager"] = {k: user[k] for k in fields if k in user}
        # What the real one answers for a known customer without a (free) manager is not documented (crm-api.md §D4);
        # this fake names the customer whenever it knows one, and the client takes either answer.
        if rules.truthy(request.query.get("details")) and (customer is not None or "manager" in body):
            body["customer"] = customer or {"id": 1, "phones": [{"number": phone}]}
            body["links"] = {"newOrderLink": f"{self.url}/orders/add?phone={phone}"}
        return web.json_response(body)

    async def _users(self, request: web.Request) -> web.Response:
        try:
            limit, page = int(request.query.get("limit", "20")), int(request.query.get("page", "1"))
        except ValueError:
            return _envelope(400, "Validation error", {"limit": "This value should be an integer."})
        if limit not in rules.PAGE_LIMITS or page < 1:
            return _envelope(400, "Validation error", {"limit": "This value is not a valid choice."})
        total_pages = max(1, -(-len(self.users) // limit))
        chunk = self.users[(page - 1) * limit : page * limit]
        return web.json_response(
            {
                "success": True,
                "users": chunk,
                "pagination": {
                    "limit": limit,
                    "totalCount": len(self.users),
                    "currentPage": page,
                    "totalPageCount": total_pages,
                },
            }
        )

    # -- driving our callbacks ------------------------------------------------------------------

    async def click_to_call(
        self,
        code: str,
        phone: str,
        *,
        user_id: int | None = None,
        external_phone: str | None = None,
        module_code: str | None = None,
    ) -> tuple[int, str]:
        """What RetailCRM does when a user clicks a number: GET makeCallUrl with clientId, code, phone."""
        module = self.modules[module_code or next(iter(self.modules))]
        url = module["integrations"]["telephony"]["makeCallUrl"]
        params = {"clientId": module["clientId"], "code": code, "phone": phone}
        if user_id is not None:
            params["userId"] = str(user_id)
        if external_phone:
            params["externalPhone"] = external_phone
        async with aiohttp.ClientSession() as session, session.get(url, params=params) as resp:
            return resp.status, await resp.text()
