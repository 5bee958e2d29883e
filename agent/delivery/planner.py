"""CallEvents into outbox rows: each enabled CRM of the call's enterprise plans what it needs.

An ended call is stored in `calls` in the same transaction as its deliveries.

Routing rules filter before any connector plans (`for_crm`): a blocked caller, or a call on a DID with
`crm_delivery` off, gets no delivery at all (the call is still stored); an incoming call nobody answered
carries its DID's `default_extension` (`CallEvent.default_extension`) for the connectors' task/lead owner.

The AMI reader only enqueues here (`put` never waits); a background task reads the enterprise's
settings (cached), asks each connector's pure `plan`, and stores the result in one transaction.
While the database is away the events go to the agent's journal on disk (agent.delivery.journal) and are
planned from there once it is back; at stop, what is queued goes there too, and the next start stores it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from agent.delivery.integrations import Integrations
from agent.delivery.journal import Journal
from agent.delivery.outbox import Outbox
from agent.redirect.rules import NO_RULES, Rules
from agent.store import calls as callstore
from agent.store import database
from agent.tracking.event import CallEvent
from connectors.base import Delivery

log = logging.getLogger(__name__)

BATCH_MAX = 500
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
JOURNAL_EVERY_S = 0.5  # while the database is away, what arrives reaches the disk within this


class Planner:
    def __init__(
        self,
        integrations: Integrations,
        outbox: Outbox,
        rules: Callable[[str], Awaitable[Rules]] | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.integrations = integrations
        self.outbox = outbox
        self.rules = rules  # enterprise -> its routing rules (cached; `RulesCache.get`)
        self.journal = journal  # where events wait on disk while the database is away, and across a stop
        self.queue: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._holding: list[CallEvent] = []  # taken off the queue, not yet stored nor journaled

    def put(self, event: CallEvent) -> None:
        self.queue.put_nowait(event)

    async def run(self) -> None:
        await self._until_stored(self._replay_journal)  # what an earlier run (or a crash) left on disk
        while True:
            self._holding = [await self.queue.get()]
            while not self.queue.empty() and len(self._holding) < BATCH_MAX:  # what else waits goes along
                self._holding.append(self.queue.get_nowait())
            events = self._holding
            await self._until_stored(functools.partial(self._store, events), events)
            self._holding = []

    async def _until_stored(self, attempt: Callable[[], Awaitable[None]], events: Sequence[CallEvent] = ()) -> None:
        """Run `attempt` until the database takes it. While the database is away, `events` and whatever
        else arrives go to the journal (so a crash or a stop loses none of them), and the journal is what
        is stored once the database is back."""
        delay, journaled = RETRY_FIRST_S, False
        while True:
            try:
                await attempt()
                return
            except Exception as exc:
                if not database.is_transient(exc):
                    raise
                if self.journal is None:
                    log.warning("planner: database unavailable (%s); %d call event(s) wait", exc, len(events))
                else:
                    if not journaled:
                        await asyncio.to_thread(self.journal.append, events)
                        self._holding, journaled = [], True
                        log.warning(
                            "planner: database unavailable (%s); call events wait in %s", exc, self.journal.path
                        )
                    attempt = self._replay_journal
            await self._wait(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _wait(self, seconds: float) -> None:
        """Sleep; with a journal, what arrives meanwhile goes to disk at once."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while (left := until - loop.time()) > 0:
            await asyncio.sleep(min(left, JOURNAL_EVERY_S))
            if self.journal is not None and not self.queue.empty():
                arrived = [self.queue.get_nowait() for _ in range(self.queue.qsize())]
                self._holding = arrived
                await asyncio.to_thread(self.journal.append, arrived)
                self._holding = []

    async def _replay_journal(self) -> None:
        if self.journal is None:
            return
        pending = await asyncio.to_thread(self.journal.pending)
        if not pending:
            return
        for first in range(0, len(pending), BATCH_MAX):
            await self._store(pending[first : first + BATCH_MAX])
        await asyncio.to_thread(self.journal.clear)
        log.info("planner: %d call event(s) from the journal stored", len(pending))

    async def _store(self, events: list[CallEvent]) -> None:
        """Plan and store; a batch the database refuses for good is stored one event at a time, and an event
        that still fails is logged with its call and set aside (journal.rejected), never dropped silently."""
        try:
            await self.plan_and_store(events)
            return
        except Exception as exc:
            if database.is_transient(exc):
                raise
            if len(events) > 1:
                for event in events:
                    await self._store([event])
                return
            log.exception("planner: call %s (%s) refused by the database", events[0].call_id, events[0].event)
            if self.journal is not None:
                await asyncio.to_thread(self.journal.reject, events)

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

    def close(self) -> None:
        """At stop: what is held or queued goes to the journal (replayed at the next start)."""
        if self.journal is None:
            return
        left = self._holding + [self.queue.get_nowait() for _ in range(self.queue.qsize())]
        self._holding = []
        if left:
            self.journal.append(left)
            log.info("planner: %d call event(s) kept in %s for the next start", len(left), self.journal.path)


def for_crm(event: CallEvent, rules: Rules) -> CallEvent | None:
    """The event as the CRMs may see it, or None when the rules keep it from every CRM."""
    if not rules.delivers(event.phone, event.did):
        return None
    rule = rules.did(event.did) if event.direction == "in" else None
    if rule is not None and rule.default_extension and not event.answered_by:
        return replace(event, default_extension=rule.default_extension)
    return event
