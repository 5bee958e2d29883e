"""RetailCRM as a `connectors.base.Connector`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

from agent.tracking.event import CallEvent
from connectors.base import Caller, Connector, Delivery, Manager, Pool
from connectors.retailcrm.client import MAX_UPLOAD_BATCH, RetailCrmClient
from connectors.retailcrm.legacy import adapt
from connectors.retailcrm.plan import CRM, KIND_UPLOAD, plan
from connectors.retailcrm.settings import SECRET_FIELDS, RetailCrmSettings, parse


class RetailCrmConnector(Connector[RetailCrmSettings, RetailCrmClient]):
    name: str = CRM
    secret_fields: tuple[str, ...] = SECRET_FIELDS
    lookup_route: str | None = "/api/v5/telephony/manager"

    def __init__(self) -> None:
        self.pool: Pool | None = None
        self.phone_locks: dict[tuple[str, str], asyncio.Lock] = {}

    def bind(self, pool: Pool) -> None:
        """The database the call-back tasks are kept in (agent.parts.delivery); unbound, tasks are refused."""
        self.pool = pool

    def parse_settings(self, raw: Mapping[str, Any], *, enterprise_timezone: str | None = None) -> RetailCrmSettings:
        return parse(adapt(raw, timezone=enterprise_timezone))

    def settings_json(self, settings: RetailCrmSettings) -> dict[str, Any]:
        return settings.to_json()

    def enabled(self, settings: RetailCrmSettings) -> bool:
        return settings.enabled

    def plan(self, event: CallEvent, settings: RetailCrmSettings) -> list[Delivery]:
        return plan(event, settings)

    def batch_limit(self, kind: str) -> int:
        return MAX_UPLOAD_BATCH if kind == KIND_UPLOAD else 1

    def account(self, settings: RetailCrmSettings) -> str:
        return settings.domain

    def client(self, settings: RetailCrmSettings, http: httpx.AsyncClient) -> RetailCrmClient:
        return RetailCrmClient(settings, http, pool=self.pool, phone_locks=self.phone_locks)

    def responsible_lookup(
        self, settings: RetailCrmSettings, client: RetailCrmClient, enterprise: str
    ) -> RetailCrmLookup:
        return RetailCrmLookup(settings, client)


class RetailCrmLookup:
    """`telephony/manager` -> the manager -> the extension: the enterprise's mapping first, else the code
    RetailCRM holds for the manager (the module's additionalCodes are our extensions); with `details=1` the same
    answer names the customer, the caller's name."""

    crm = CRM

    def __init__(self, settings: RetailCrmSettings, client: RetailCrmClient) -> None:
        self.settings = settings
        self.client = client

    async def find_responsible(self, phone_e164: str) -> Caller | None:
        found, name = await self.client.find_caller(phone_e164)  # raises CrmError when RetailCRM fails
        if found is None:
            return Caller(CRM, name) if name else None
        extension = self.settings.user_extensions.get(found.user_id) or found.code
        manager = Manager(crm=CRM, user_id=found.user_id, name=found.name, extension=extension or None)
        return Caller(CRM, name, manager)
