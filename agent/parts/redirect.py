"""Smart redirect: the router (rules, its cache, each enabled CRM's lookup) and the FastAGI server it answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from agent.config.sections import Config
from agent.parts.delivery import Delivery
from agent.parts.errors import ConflictError, why
from agent.redirect.router import Router
from agent.redirect.server import AgiServer, hosts_of
from agent.store import database, enterprises
from agent.store import routing_rules as routing_store
from agent.tracking.extstates import ExtensionStates
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics


@dataclass(frozen=True)
class Redirect:
    router: Router
    agi: AgiServer


@asynccontextmanager
async def redirect_part(
    cfg: Config,
    pool: database.Pool,
    delivery: Delivery,
    states: Mapping[str, ExtensionStates],
    health: HealthRegistry,
    metrics: Metrics,
) -> AsyncIterator[Redirect]:
    """`states`: per enterprise, its phones' states, as the PBX links keep them. A CRM's settings changing,
    or a contact's responsible manager in amoCRM (webhook), drops the enterprise's cached answers."""
    async with AsyncExitStack() as stack:
        router = Router(
            delivery.integrations.lookups,
            states=states,
            busy_policy=lambda number: enterprises.redirect_when_busy(pool, number),
            regions={p.enterprise: p.region for p in cfg.pbx},
            default_region=cfg.agent.default_region,
            rules=lambda number: routing_store.get(pool, number),
            away=lambda number: routing_store.away_statuses(pool, number),
            history=lambda number, phone, since: routing_store.last_answered(pool, number, phone, since),
        )
        stack.push_async_callback(router.close)
        delivery.integrations.on_change(router.invalidate)
        if delivery.amocrm is not None:
            delivery.amocrm.on_responsible_change(lambda enterprise, _phones: router.invalidate(enterprise))
        agi = AgiServer(cfg.agi, router, health, hosts_of(cfg.pbx), registry=metrics.registry)
        try:
            await agi.start()
        except OSError as exc:
            raise ConflictError(f"cannot listen on [agi] listen {cfg.agi.listen}: {why(exc)}") from exc
        stack.push_async_callback(agi.stop)
        yield Redirect(router, agi)
