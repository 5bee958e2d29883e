"""Each enterprise's enabled CRMs: settings read from PostgreSQL, decrypted, validated and cached.

The cache entry of an enterprise is dropped on `NOTIFY integrations_config, '<number>'`, which the
config API sends in the transaction that changes it, so every agent on the database sees a change
at once. Clients share one keep-alive httpx client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic

import httpx

from agent.store import enterprises
from agent.store.database import Pool
from agent.store.secretbox import SecretBox
from connectors.base import AnyConnector, C, Caller, Connector, CrmClient, Manager, ResponsibleLookup, S
from connectors.http import RateLimiter, retailcrm_route

log = logging.getLogger(__name__)

FULL_REFRESH_S = 300.0


@dataclass(frozen=True, slots=True)
class Enabled(Generic[S, C]):
    """One enabled CRM of one enterprise: its connector and the settings that connector parsed."""

    connector: Connector[S, C]
    settings: S

    @property
    def crm(self) -> str:
        return self.connector.name


class PacedLookup:
    """A CRM lookup that takes its turn in the account's rate budget ahead of the deliveries waiting there:
    the CRM counts both against one limit, and a caller on the line must not wait behind a backlog."""

    def __init__(self, inner: ResponsibleLookup, limiter: RateLimiter, account: str, route: str) -> None:
        self.crm = inner.crm
        self.inner = inner
        self.limiter = limiter
        self.account = account
        self.route = route

    async def find_responsible(self, phone_e164: str) -> Caller | Manager | None:
        await self.limiter.acquire(self.account, self.route, urgent=True)
        return await self.inner.find_responsible(phone_e164)


class Integrations:
    def __init__(
        self,
        pool: Pool,
        box: SecretBox,
        connectors: dict[str, AnyConnector],
        http: httpx.AsyncClient,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.pool = pool
        self.box = box
        self.connectors = connectors
        self.http = http
        # each CRM account's request budget, for the deliveries (agent.delivery.dispatch) and the lookups
        self.limiter = limiter or RateLimiter(retailcrm_route)
        self._cache: dict[str, dict[str, Enabled[Any, Any]]] = {}
        self._clients: dict[tuple[str, int], CrmClient] = {}
        self._listeners: list[Callable[[str | None], None]] = []
        self._listened = False
        self.refresh_s = FULL_REFRESH_S

    async def enabled(self, enterprise: str) -> dict[str, Enabled[Any, Any]]:
        cached = self._cache.get(enterprise)
        if cached is not None:
            return cached
        row = await self.pool.fetchrow(enterprises.CONFIG_AND_TIMEZONE, enterprise)
        config, zone = (row["integrations_config"], row["timezone"]) if row is not None else (None, None)
        found: dict[str, Enabled[Any, Any]] = {}
        for name, raw in (config or {}).items():
            connector = self.connectors.get(name)
            if connector is None or not isinstance(raw, dict):
                continue
            try:
                settings = connector.parse_settings(self.box.decrypted(name, raw), enterprise_timezone=zone)
            except ValueError as exc:
                log.error(
                    "enterprise %s: stored %s settings are invalid (%s); integration skipped", enterprise, name, exc
                )
                continue
            if connector.enabled(settings):
                found[name] = Enabled(connector, settings)
        self._cache[enterprise] = found
        return found

    async def lookups(self, enterprise: str) -> list[ResponsibleLookup]:
        """Smart redirect's view of the CRMs (a LookupSource): each enabled CRM that answers "who is responsible"."""
        found: list[ResponsibleLookup] = []
        for item in (await self.enabled(enterprise)).values():
            lookup = item.connector.responsible_lookup(item.settings, self.client(item), enterprise)
            if lookup is None:
                continue
            route = item.connector.lookup_route
            found.append(lookup if route is None else PacedLookup(lookup, self.limiter, self.account_key(item), route))
        return found

    @staticmethod
    def account_key(enabled: Enabled[Any, Any]) -> str:
        """The rate limiter's name for the enabled CRM's account (one budget per CRM account)."""
        return f"{enabled.crm}:{enabled.connector.account(enabled.settings)}"

    def client(self, enabled: Enabled[Any, Any]) -> CrmClient:
        """One client per (CRM, settings): a changed key or domain gets a new one."""
        key = (enabled.crm, hash(repr(enabled.settings)))
        client = self._clients.get(key)
        if client is None:
            client = enabled.connector.client(enabled.settings, self.http)
            self._clients[key] = client
        return client

    def on_change(self, listener: Callable[[str | None], None]) -> None:
        """Also tell `listener(enterprise)` when an enterprise's settings change (routing caches);
        `listener(None)` means any enterprise's may have changed."""
        self._listeners.append(listener)

    def invalidate(self, enterprise: str) -> None:
        self._cache.pop(enterprise, None)
        for listener in self._listeners:
            listener(enterprise)

    async def listen(self) -> None:
        """Hold a LISTEN connection; drop cached entries on NOTIFY. Reconnects are the supervisor's job."""

        def notified(_conn: object, _pid: int, _channel: str, payload: object) -> None:
            self.invalidate(str(payload))

        def terminated(_conn: object) -> None:
            lost.set()

        lost = asyncio.Event()
        async with self.pool.acquire() as conn:
            conn.add_termination_listener(terminated)
            await conn.add_listener(enterprises.NOTIFY_CHANNEL, notified)
            try:
                if self._listened:  # changes made while we were not listening were missed: start afresh
                    self._cache.clear()
                    for listener in self._listeners:
                        listener(None)
                self._listened = True
                while not lost.is_set():
                    # a safety net under NOTIFY: every few minutes (with jitter, so agents sharing a
                    # database do not all reload at once) forget everything cached
                    period = self.refresh_s * random.uniform(0.8, 1.2)
                    try:
                        async with asyncio.timeout(period):
                            await lost.wait()
                    except TimeoutError:
                        self._cache.clear()
                        for listener in self._listeners:
                            listener(None)
            finally:
                with contextlib.suppress(Exception):  # the pool may have taken the connection back at shutdown
                    conn.remove_termination_listener(terminated)
                    if not conn.is_closed():
                        await conn.remove_listener(enterprises.NOTIFY_CHANNEL, notified)
        raise ConnectionError("the LISTEN connection to the database was lost")
