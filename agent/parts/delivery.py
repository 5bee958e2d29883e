"""Delivery: each enterprise's CRMs (amoCRM bound to the database), the outbox that sends to them, the planner
that fills it, and the count of agents sharing the CRMs' rate limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from agent.config.sections import Config
from agent.delivery.dispatch import CrmDispatcher
from agent.delivery.integrations import Integrations
from agent.delivery.journal import Journal
from agent.delivery.outbox import Outbox, OutboxPolicy, policy_from
from agent.delivery.outbox_health import outbox_probe
from agent.delivery.planner import Planner
from agent.store import database, peers
from agent.store import routing_rules as routing_store
from agent.store.secretbox import SecretBox, derive_key
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics
from agent.web.recordings import RecordLinks
from connectors.amocrm import legacy as amocrm_legacy
from connectors.amocrm.connector import AmoCrmConnector
from connectors.amocrm.oauth import STATE_PURPOSE, StateSigner
from connectors.http import make_client
from connectors.registry import connectors, secret_fields
from connectors.retailcrm.connector import RetailCrmConnector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    integrations: Integrations
    amocrm: AmoCrmConnector | None  # None when the registry has no amoCRM
    outbox: Outbox
    agent_count: peers.AgentCount  # agents on the database: each takes its share of the rate limits
    planner: Planner


@asynccontextmanager
async def delivery_part(
    cfg: Config,
    pool: database.Pool,
    secret: bytes,
    records: RecordLinks,
    health: HealthRegistry,
    metrics: Metrics,
    policy: OutboxPolicy | None = None,
) -> AsyncIterator[Delivery]:
    """`policy`: the outbox's (tests pass one); else from `[outbox]`."""
    async with AsyncExitStack() as stack:
        http = make_client()
        stack.push_async_callback(http.aclose)
        integrations = Integrations(pool, SecretBox(secret, secret_fields()), connectors(), http)
        amocrm = attach_amocrm(integrations, secret, cfg.agent.public_url)
        retailcrm = integrations.connectors.get(RetailCrmConnector.name)
        if isinstance(retailcrm, RetailCrmConnector):
            retailcrm.bind(integrations.pool)  # its call-back tasks are kept there
        if amocrm is not None:
            stack.push_async_callback(amocrm.aclose)
            # before any settings save can rewrite them: the old integration's tokens, so it stays connected
            await amocrm_legacy.adopt_all(integrations.pool, integrations.box)
        policy = policy or policy_from(cfg.outbox)
        dispatcher = CrmDispatcher(
            integrations,
            concurrency=policy.account_concurrency,
            breaker_threshold=policy.breaker_threshold,
            breaker_cooldown=policy.breaker_cooldown,
            recordings=records,
            recording_wait=cfg.outbox.recording_wait,
        )
        outbox = Outbox(pool, dispatcher, metrics, policy)
        agent_count = peers.AgentCount(lambda: peers.count_agents(pool), interval=cfg.outbox.agents_refresh)
        await agent_count.refresh()
        agent_count.on_change(metrics.agents_sharing_limits.set)
        agent_count.on_change(dispatcher.share_limits)
        if amocrm is not None:
            agent_count.on_change(amocrm.guard.share)
        rules_cache = routing_store.RulesCache(pool)
        integrations.on_change(rules_cache.invalidate)
        planner = Planner(integrations, outbox, rules=rules_cache.get, journal=Journal(cfg.agent.state_dir))
        stack.callback(planner.close)  # once all work has stopped: what is still queued goes to the journal
        health.register_probe(
            "outbox", lambda: outbox_probe(outbox, metrics, agents=agent_count.agents), critical=False
        )
        yield Delivery(integrations, amocrm, outbox, agent_count, planner)


def attach_amocrm(integrations: Integrations, secret: bytes, public_url: str) -> AmoCrmConnector | None:
    """Bind the amoCRM connector to the database and make config NOTIFYs drop its cached tokens; OAuth
    `state` values are signed with a key derived from the state secret."""
    connector = integrations.connectors.get(AmoCrmConnector.name)
    if not isinstance(connector, AmoCrmConnector):
        return None
    signer = StateSigner(derive_key(secret, STATE_PURPOSE))
    tokens = connector.bind(integrations.pool, integrations.box, public_url, state_signer=signer)
    integrations.on_change(tokens.forget)
    return connector


async def run_outbox(outbox: Outbox, hold: float, started: asyncio.Event) -> None:
    """The outbox, after `hold` seconds the first time (agent.store.peers.join_hold); `started` is set once
    it sends."""
    if hold > 0 and not started.is_set():
        log.info(
            "other agents send from this database; this one starts sending in %.0f s, once they have "
            "counted it and lowered their share of the CRMs' rate limits",
            hold,
        )
        await asyncio.sleep(hold)
    started.set()
    await outbox.run()
