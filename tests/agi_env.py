"""A smart-redirect stack for tests: fake CRM over HTTP -> HttpLookup -> Router -> AgiServer on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from agent.config.checks import Address
from agent.config.sections import AgiSection
from agent.redirect.answers import CacheSettings
from agent.redirect.router import Router
from agent.redirect.server import AgiServer
from agent.tracking.extstates import ExtensionStates
from agent.web.health import HealthRegistry
from connectors.base import ResponsibleLookup
from tests.fakes.crm_lookup import FakeResponsibleCrm, HttpLookup

CUSTOMER_A = "+375291234567"
CUSTOMER_B = "+375297654321"
UNKNOWN = "+375445550011"
ENTERPRISE = "100"


@dataclass
class Env:
    crm: FakeResponsibleCrm
    router: Router
    server: AgiServer
    health: HealthRegistry
    states: ExtensionStates
    extensions: dict[str, str]
    enabled: dict[str, bool] = field(default_factory=lambda: {ENTERPRISE: True})
    when_busy: dict[str, bool] = field(default_factory=dict)
    source_calls: int = 0
    source_error: Exception | None = None
    source_gate: asyncio.Event | None = None  # set: every settings lookup waits for it first (a hanging CRM)

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port


@asynccontextmanager
async def agi_env(
    deadline_ms: int = 400, settings: CacheSettings | None = None, pbx_hosts: dict[str, str] | None = None
) -> AsyncIterator[Env]:
    crm = FakeResponsibleCrm()
    crm.responsible = {CUSTOMER_A: ("7", "Ivan Petrov"), CUSTOMER_B: ("8", 'Anna "Big" Smith, Jr.\n')}
    await crm.start()
    session = aiohttp.ClientSession()
    extensions = {"7": "150", "8": "151"}
    lookup = HttpLookup("retailcrm", crm.url, session, extensions)
    env: Env

    async def source(enterprise: str) -> list[ResponsibleLookup]:
        env.source_calls += 1
        if env.source_gate is not None:
            await env.source_gate.wait()
        if env.source_error is not None:
            raise env.source_error
        return [lookup] if env.enabled.get(enterprise) else []

    async def when_busy(enterprise: str) -> bool:
        return env.when_busy.get(enterprise, False)

    states = ExtensionStates()
    router = Router(source, busy_policy=when_busy, states={ENTERPRISE: states}, default_region="BY", settings=settings)
    health = HealthRegistry()
    server = AgiServer(
        AgiSection(Address("127.0.0.1", 0), deadline_ms),
        router,
        health,
        {"127.0.0.1": ENTERPRISE} if pbx_hosts is None else pbx_hosts,
    )
    env = Env(crm, router, server, health, states, extensions)
    await server.start()
    try:
        yield env
    finally:
        await server.stop()
        await router.close()
        await session.close()
        await crm.stop()
