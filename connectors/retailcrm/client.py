"""RetailCRM v5 over HTTP: deliveries, the responsible-manager lookup, setup calls (crm-api.md Part A)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from agent.life.masking import mask_text
from connectors.base import CrmError, Delivery, RecordUrl, SendOutcome, recording_of
from connectors.http import Exchange, RateLimiter, make_client, perform
from connectors.retailcrm import envelope
from connectors.retailcrm.customers import ensure_customers
from connectors.retailcrm.models import (
    ConnectionReport,
    CrmUser,
    ModuleResult,
    ModuleUrls,
    Responsible,
    UsersPage,
    connection_report,
    module_object,
    parse_customer_name,
    parse_module_info,
    parse_responsible,
    parse_users_page,
)
from connectors.retailcrm.plan import KIND_EVENT, KIND_TASK, KIND_TASK_DONE, KIND_UPLOAD
from connectors.retailcrm.settings import RetailCrmSettings
from connectors.retailcrm.tasks import TaskDoneSender, TaskSender

MAX_UPLOAD_BATCH = 50
USERS_PAGE_LIMIT = 100
ExchangeHook = Callable[[str, SendOutcome], None]


class RetailCrmClient:
    """One account. Pass a shared `http` client (connectors.http.make_client); else one is made and
    closed by `aclose()`. `on_exchange(name, outcome)` sees every exchange, for integration_logs;
    `limiter` (e.g. RateLimiter(retailcrm_route), shared per process) paces requests per account.
    `pool` (the agent's database) and `phone_locks` (shared per process) are what call-back tasks need."""

    def __init__(
        self,
        settings: RetailCrmSettings,
        http: httpx.AsyncClient | None = None,
        *,
        on_exchange: ExchangeHook | None = None,
        limiter: RateLimiter | None = None,
        pool: Any = None,
        phone_locks: dict[tuple[str, str], asyncio.Lock] | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.phone_locks = phone_locks if phone_locks is not None else {}
        self._own_http = http is None
        self._http = http or make_client()
        self._on_exchange = on_exchange
        self._limiter = limiter

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> RetailCrmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport -----------------------------------------------------------------------------

    async def _call(
        self,
        name: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        versioned: bool = True,
        urgent: bool = False,
    ) -> tuple[Exchange, SendOutcome]:
        base = self.settings.api_url if versioned else f"{self.settings.domain}/api"
        secrets = (self.settings.api_key, self.settings.client_id)
        if self._limiter is not None:
            await self._limiter.acquire(self.settings.domain, base + path, urgent=urgent)
        exchange = await perform(
            self._http,
            method,
            base + path,
            params=params,
            form=form,
            headers={"X-API-KEY": self.settings.api_key},
            secrets=secrets,
        )
        result = envelope.outcome(exchange)
        if result.error:
            result.error = mask_text(result.error, secrets)
        if self._on_exchange is not None:
            self._on_exchange(name, result)
        return exchange, result

    async def request(
        self,
        name: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> tuple[Exchange, SendOutcome]:
        """One exchange of a delivery that takes several (connectors/retailcrm/tasks.py)."""
        return await self._call(name, method, path, params=params, form=form)

    async def _checked(self, name: str, method: str, path: str, **kw: Any) -> dict[str, Any]:
        exchange, result = await self._call(name, method, path, **kw)
        if not result.ok:
            raise CrmError(result)
        assert isinstance(exchange.body, dict)
        return exchange.body

    # -- deliveries ----------------------------------------------------------------------------

    async def send(self, deliveries: Sequence[Delivery], *, record_url: RecordUrl | None = None) -> SendOutcome:
        """One HTTP exchange: a single `call_event`, or up to 50 `calls_upload` deliveries.

        `record_url(path, pbx=...)` turns a delivery's `recording` (of `recording_pbx`) into a URL RetailCRM
        can fetch (None: omit).
        """
        kinds = {d.kind for d in deliveries}
        if len(kinds) != 1:
            raise ValueError(f"send() takes deliveries of one kind, got {sorted(kinds) or 'none'}")
        kind = kinds.pop()
        if kind == KIND_EVENT:
            if len(deliveries) != 1:
                raise ValueError("call events go one per request")
            form = {"event": _json(deliveries[0].payload["event"])}
            _, result = await self._call(KIND_EVENT, "POST", "/telephony/call/event", form=form)
            result.items = {deliveries[0].idempotency_key: result.status}
            return result
        if kind == KIND_UPLOAD:
            return await self._upload(deliveries, record_url)
        if kind == KIND_TASK:
            return await self._one(deliveries, TaskSender)
        if kind == KIND_TASK_DONE:
            return await self._one(deliveries, TaskDoneSender)
        raise ValueError(f"unknown delivery kind {kind!r}")

    async def _one(self, deliveries: Sequence[Delivery], sender: type[TaskSender]) -> SendOutcome:
        if len(deliveries) != 1:
            raise ValueError("tasks go one per send")
        if self.pool is None:
            raise RuntimeError("the RetailCRM connector is not bound to the database (agent.parts.delivery)")
        result = await sender(self, self.pool, self.phone_locks, deliveries[0]).send()
        result.items = {deliveries[0].idempotency_key: result.status}
        return result

    async def _upload(self, deliveries: Sequence[Delivery], record_url: RecordUrl | None) -> SendOutcome:
        if not 1 <= len(deliveries) <= MAX_UPLOAD_BATCH:
            raise ValueError(f"calls/upload takes 1..{MAX_UPLOAD_BATCH} calls, got {len(deliveries)}")
        if self.settings.create_customers:
            held = await ensure_customers(self, self.phone_locks, deliveries)
            if held is not None:
                return held
        calls = [_with_record_url(d.payload, record_url) for d in deliveries]
        exchange, result = await self._call(
            KIND_UPLOAD, "POST", "/telephony/calls/upload", form={"calls": _json(calls)}
        )
        result.items = {d.idempotency_key: result.status for d in deliveries}
        if result.ok and isinstance(exchange.body, dict):
            dup_ids = {str(x) for x in exchange.body.get("duplicateCalls") or () if x is not None}
            result.duplicates = [
                d.idempotency_key for d in deliveries if str(d.payload["call"].get("externalId")) in dup_ids
            ]
        return result

    # -- lookups -------------------------------------------------------------------------------

    async def find_responsible(self, phone: str, *, ignore_status: bool = False) -> Responsible | None:
        """The customer's responsible manager (None: no customer or no manager). Raises CrmError."""
        body = await self._manager(phone, ignore_status=ignore_status, details=False)
        return parse_responsible(body)

    async def find_caller(self, phone: str, *, ignore_status: bool = False) -> tuple[Responsible | None, str]:
        """The customer's responsible manager and the customer's name ("" when unknown), from one
        `telephony/manager` asked with `details=1`. Raises CrmError."""
        body = await self._manager(phone, ignore_status=ignore_status, details=True)
        return parse_responsible(body), parse_customer_name(body)

    async def _manager(self, phone: str, *, ignore_status: bool, details: bool) -> dict[str, Any]:
        params = {"phone": phone, "details": "1" if details else "0", "ignoreStatus": "1" if ignore_status else "0"}
        # a caller waits on the line: ahead of the deliveries queued for this account's rate limit
        return await self._checked("manager", "GET", "/telephony/manager", params=params, urgent=True)

    async def list_users(self, page: int = 1, *, limit: int = USERS_PAGE_LIMIT) -> UsersPage:
        params = {"page": str(page), "limit": str(limit)}
        body = await self._checked("users", "GET", "/users", params=params)
        return parse_users_page(body, page)

    async def all_users(self, *, max_pages: int = 50) -> list[CrmUser]:
        users: list[CrmUser] = []
        page = 1
        while page <= max_pages:
            result = await self.list_users(page)
            users.extend(result.users)
            if not result.has_next:
                break
            page += 1
        return users

    async def test_connection(self) -> ConnectionReport:
        """`/api/credentials`: reachable, key valid, and allowed to call what we need?"""
        exchange, result = await self._call("credentials", "GET", "/credentials", versioned=False)
        return connection_report(exchange, result, self.settings.code)

    # -- the telephony module --------------------------------------------------------------------

    async def register_module(self, urls: ModuleUrls, *, name: str = "PBX agent", active: bool = True) -> ModuleResult:
        """Create or update our telephony module; codes and external phone come from settings."""
        module = module_object(self.settings, urls, name=name, active=active)
        return await self._edit_module(module)

    async def get_module(self, code: str | None = None) -> dict[str, Any] | None:
        """The module `code` (default: ours) as RetailCRM has it; None: the account has no such module."""
        path = f"/integration-modules/{code or self.settings.code}"
        exchange, result = await self._call("module_get", "GET", path)
        if result.http_status == 404:
            return None
        if not result.ok:
            raise CrmError(result)
        body = exchange.body if isinstance(exchange.body, dict) else {}
        module = body.get("integrationModule")
        return module if isinstance(module, dict) else None

    async def deactivate_module(self) -> ModuleResult | None:
        """Switch the module off, keeping the rest of it as RetailCRM has it (None: no module)."""
        module = await self.get_module()
        if module is None:
            return None
        return await self._edit_module({**module, "active": False})

    async def set_additional_codes(self, codes: Mapping[str, str]) -> ModuleResult:
        """Replace the module's user→extension codes ({crm_user_id: extension}); the rest is kept."""
        module = await self.get_module()
        if module is None:
            raise CrmError(SendOutcome("permanent", error="the telephony module is not registered"))
        integrations = dict(module.get("integrations") or {})
        telephony = dict(integrations.get("telephony") or {})
        telephony["additionalCodes"] = [{"userId": int(u), "code": c} for u, c in codes.items()]
        integrations["telephony"] = telephony
        return await self._edit_module({**module, "integrations": integrations})

    async def _edit_module(self, module: dict[str, Any]) -> ModuleResult:
        clean = {k: v for k, v in module.items() if k not in ("native", "freeze")}
        path = f"/integration-modules/{self.settings.code}/edit"
        exchange, result = await self._call("module_edit", "POST", path, form={"integrationModule": _json(clean)})
        if not result.ok:
            raise CrmError(result)
        assert isinstance(exchange.body, dict)
        return parse_module_info(exchange.body, created=exchange.http_status == 201)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _with_record_url(payload: Mapping[str, Any], record_url: RecordUrl | None) -> dict[str, Any]:
    call = dict(payload["call"])
    recording = recording_of(payload)
    if recording is not None and record_url is not None:
        path, pbx = recording
        url = record_url(path, pbx=pbx)
        if url:
            call["recordUrl"] = url
    return call
