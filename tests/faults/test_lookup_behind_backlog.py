"""A caller waits on the line while a backlog of deliveries drains to the same RetailCRM account: the CRM
counts both against one limit, so the lookup takes the account's next turn, ahead of the waiting deliveries
(real dispatcher, real client, the fake RetailCRM over HTTP, a real database for the settings)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.delivery.dispatch import CrmDispatcher
from agent.delivery.integrations import Integrations
from agent.store.database import Pool
from agent.store.secretbox import SecretBox, load_or_create_secret
from agent.tracking.event import CallEvent
from connectors.base import Caller
from connectors.http import RateLimiter, make_client
from connectors.registry import connectors, secret_fields
from connectors.retailcrm.plan import plan
from connectors.retailcrm.settings import parse
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm
from tests.fakes.retailcrm import FakeRetailCrm
from tests.waiting import until


def ended_call(call_id: str) -> CallEvent:
    now = datetime.now(UTC)
    return CallEvent(
        event="ended",
        call_id=call_id,
        enterprise=ENTERPRISE,
        direction="in",
        phone="+375297777777",
        did="375173880000",
        extension="150",
        at=now,
        extensions=("150",),
        answered_by="150",
        result="answered",
        ring_seconds=3.0,
        talk_seconds=20.0,
        started_at=now - timedelta(seconds=23),
        ended_at=now,
    )


BACKLOG = 60
RATE = 20.0  # requests/s to the account: the backlog takes 3 s to drain


async def test_a_lookup_goes_before_the_deliveries_waiting_for_the_account(pool: Pool, tmp_path: Path) -> None:
    async with FakeRetailCrm(api_key=API_KEY) as crm, make_client() as http:
        crm.set_manager("+375291234567", {"id": 7, "firstName": "Ivan", "lastName": "Petrov", "status": "free"})
        raw = await configure_retailcrm(pool, tmp_path, crm)
        box = SecretBox(load_or_create_secret(tmp_path), secret_fields())
        limiter = RateLimiter(lambda _path: ("all", RATE))
        integrations = Integrations(pool, box, connectors(), http, limiter)
        dispatcher = CrmDispatcher(integrations, concurrency=BACKLOG)
        settings = parse(raw)
        events = [d for i in range(BACKLOG) for d in plan(ended_call(f"b{i}"), settings) if d.kind == "call_event"]
        assert len(events) == BACKLOG
        backlog = [asyncio.create_task(dispatcher.send(ENTERPRISE, "retailcrm", [d])) for d in events]
        await until(lambda: len(crm.requests) >= 5, within=10)  # the backlog is draining
        (lookup,) = await integrations.lookups(ENTERPRISE)
        asked = len(crm.requests)
        found = await lookup.find_responsible("+375291234567")
        paths = [r.path for r in crm.requests]
        await asyncio.gather(*backlog)
        sent = len(crm.requests)
    manager = found.manager if isinstance(found, Caller) else found
    assert manager is not None and manager.user_id == "7"
    answered = paths.index("/api/v5/telephony/manager")
    # no delivery waited for went first: at most one already on the wire when the lookup asked
    assert answered - asked <= 1, paths
    assert sent == BACKLOG + 1
