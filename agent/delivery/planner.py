"""CallEvents into outbox rows: each enabled CRM of the call's enterprise plans what it needs.

An ended call is stored in `calls` in the same transaction as its deliveries.

Routing rules filter before any connector plans (`for_crm`): a blocked caller, or a call on a DID with
`crm_delivery` off, gets no delivery at all (the call is still stored); an incoming call nobody answered
carries its DID's `default_extension` (`CallEvent.default_extension`) for the connectors' task/lead owner.

The AMI reader only enqueues here (`put` never waits); a background task reads the enterprise's
settings (cached), asks each connector's pure `plan`, and stores the result in one transaction.
While the database is away the events wait in memory and are planned once it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from agent.delivery.integrations import Integrations
from agent.delivery.outbox import Outbox
from agent.redirect.rules import NO_RULES, Rules
from agent.store import calls as callstore
from agent.store import database
from agent.tracking.event import CallEvent
from connectors.base import Delivery

log = logging.getLogger(__name__)

BATCH_MAX = 500


class Planner:
    def __init__(
        self, integrations: Integrations, outbox: Outbox, rules: Callable[[str], Awaitable[Rules]] | None = None
    ) -> None:
        self.integrations = integrations
        self.outbox = outbox
        self.rules = rules  # enterprise -> its routing rules (cached; `RulesCache.get`)
        self.queue: asyncio.Queue[CallEvent] = asyncio.Queue()

    def put(self, event: CallEvent) -> None:
        self.queue.put_nowait(event)

    async def run(self) -> None:
        while True:
            events = [await self.queue.get()]
            while not self.queue.empty() and len(events) < BATCH_MAX:  # whatever else is waiting goes along
                events.append(self.queue.get_nowait())
            delay = 0.5
            while True:
                try:
                    await self.plan_and_store(events)
                    break
                except Exception as exc:
                    if not database.is_transient(exc):
                        raise
                    log.warning("planner: database unavailable (%s); %d call event(s) wait", exc, len(events))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)

    async def plan_and_store(self, events: list[CallEvent]) -> int:
        """Plan every event for every enabled CRM of its enterprise; store them all in one transaction."""
        deliveries: list[Delivery] = []
        for original in events:
            event = for_crm(original, await self.rules(original.enterprise) if self.rules else NO_RULES)
            if event is None:
                continue
            for enabled in (await self.integrations.enabled(event.enterprise)).values():
                try:
                    deliveries += enabled.connector.plan(event, enabled.settings)
                except Exception:  # one connector's bug must not cost the other CRMs the call
                    log.exception("planner: %s could not plan %s of call %s", enabled.crm, event.event, event.call_id)
        ended = [callstore.row(e) for e in events if e.event == "ended"]

        async def store_calls(conn: Any) -> None:
            await conn.executemany(callstore.INSERT, ended)

        return await self.outbox.enqueue(deliveries, before=store_calls if ended else None)


def for_crm(event: CallEvent, rules: Rules) -> CallEvent | None:
    """The event as the CRMs may see it, or None when the rules keep it from every CRM."""
    if not rules.delivers(event.phone, event.did):
        return None
    rule = rules.did(event.did) if event.direction == "in" else None
    if rule is not None and rule.default_extension and not event.answered_by:
        return replace(event, default_extension=rule.default_extension)
    return event
