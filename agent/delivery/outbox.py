"""The durable outbox: planned CRM requests as PostgreSQL rows, delivered in the background.

- `enqueue` inserts deliveries in one transaction; the idempotency key is unique, so planning the same
  call twice (a replay, a reconnect) inserts nothing new.
- Workers claim due rows with `FOR UPDATE SKIP LOCKED`, so several agents can share the database.
  A claim is a lease: the row's `next_attempt_at` moves `lease` seconds ahead, so a row claimed by an
  agent that died (kill -9) becomes due again by itself.
- The try is counted when the row is claimed (arq's rule), before anything is sent.
- Transient failures back off exponentially with jitter (tenacity's policy), honouring Retry-After;
  permanent ones become `failed` (retriable by hand); past `expires_at` a row is `expired` (popups), past
  `max_age` it is `dead`. Nothing is silently dropped.
- Every exchange goes to integration_logs (masked, with status, timing and the ids it carried): agent.delivery.settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tenacity import RetryCallState, Retrying, wait_random_exponential

from agent.config.sections import OUTBOX_DEFAULTS, OutboxSection
from agent.delivery.claims import CLAIM, INSERT, RELEASE, RENEW, Claimed, claimed_row
from agent.delivery.settle import SETTLE, Settler, columns
from agent.store import database
from agent.store.database import Pool
from agent.web.metrics import Metrics
from connectors.base import Delivery, SendOutcome

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "deliveries"
MAX_RETRY_AFTER_S = 3600.0
SEND_SHARE = 0.8  # a send attempt gets this share of the lease: it ends before another worker may claim its rows
RENEW_AFTER = 0.2  # a send starting later than this share into its lease renews it first


@dataclass(frozen=True)
class OutboxPolicy:
    max_age: float = OUTBOX_DEFAULTS.max_age  # the fields [outbox] sets default to the section's
    lease: float = OUTBOX_DEFAULTS.lease
    claim_batch: int = 200
    max_in_flight: int = 2000  # rows claimed and not yet settled, across all accounts
    concurrency: int = 16  # requests in flight, across all accounts
    backoff_first: float = 1.0
    backoff_max: float = 600.0
    poll_interval: float = 5.0
    # per CRM account: after this many transient failures in a row, pause it for the cool-down
    breaker_threshold: int = OUTBOX_DEFAULTS.breaker_threshold
    breaker_cooldown: float = OUTBOX_DEFAULTS.breaker_cooldown
    account_concurrency: int = OUTBOX_DEFAULTS.account_concurrency
    stop_grace: float = 3.0  # at stop, sends in flight get this long to finish; the rest are released


def policy_from(section: OutboxSection) -> OutboxPolicy:
    return OutboxPolicy(
        max_age=section.max_age,
        lease=section.lease,
        account_concurrency=section.account_concurrency,
        breaker_threshold=section.breaker_threshold,
        breaker_cooldown=section.breaker_cooldown,
    )


class Dispatcher(Protocol):
    """Knows the CRMs: how many deliveries of a kind go in one request, what to wait for before a request slot
    is taken (`prepare`: a recording still being written, say; it holds up no other request), how to send them."""

    def batch_limit(self, crm: str, kind: str) -> int: ...

    async def prepare(self, crm: str, deliveries: Sequence[Delivery]) -> None: ...

    async def send(self, enterprise: str, crm: str, deliveries: Sequence[Delivery]) -> SendOutcome: ...


class Outbox:
    def __init__(
        self, pool: Pool, dispatcher: Dispatcher, metrics: Metrics | None = None, policy: OutboxPolicy | None = None
    ) -> None:
        self.pool = pool
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.policy = policy or OutboxPolicy()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self._wait = wait_random_exponential(multiplier=self.policy.backoff_first, max=self.policy.backoff_max)
        self._settler = Settler(pool)

    # -- producing -----------------------------------------------------------------------------

    async def enqueue(
        self, deliveries: Sequence[Delivery], *, before: Callable[[Any], Awaitable[None]] | None = None
    ) -> int:
        """Store deliveries (duplicates by key are ignored); return how many were new.

        `before(conn)` runs first in the same transaction (the planner stores the ended calls there, so a
        call and its deliveries are committed together or not at all)."""
        if not deliveries and before is None:
            return 0
        now = datetime.now(UTC)
        columns: list[list[Any]] = [[] for _ in range(7)]
        for d in deliveries:
            expires = now + timedelta(seconds=d.expires_after) if d.expires_after is not None else None
            for column, value in zip(
                columns, (d.idempotency_key, d.enterprise, d.crm, d.kind, d.payload, expires, d.batch_key), strict=True
            ):
                column.append(value)
        async with self.pool.acquire() as conn, conn.transaction():
            if before is not None:
                await before(conn)
            inserted = 0
            if deliveries:
                status = await conn.execute(INSERT, *columns)
                inserted = int(status.rsplit(" ", 1)[-1])
            if inserted:
                await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        if inserted:
            self._wake.set()
        return inserted

    # -- consuming -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver forever: woken by local inserts and other agents' NOTIFY, else by a short poll."""

        def notified(*_args: object) -> None:
            self._wake.set()

        async with contextlib.AsyncExitStack() as stack:
            try:
                conn = await stack.enter_async_context(self.pool.acquire())
                await conn.add_listener(NOTIFY_CHANNEL, notified)
                stack.push_async_callback(self._unlisten, conn, notified)
            except Exception as exc:
                if not database.is_transient(exc):
                    raise
                log.warning("outbox: cannot LISTEN (%s); polling every %.0f s", exc, self.policy.poll_interval)
            await self._loop()

    @staticmethod
    async def _unlisten(conn: Any, callback: Any) -> None:
        # at shutdown the pool may already have taken the connection back (is_closed() then raises)
        with contextlib.suppress(Exception):
            if not conn.is_closed():
                await conn.remove_listener(NOTIFY_CHANNEL, callback)

    async def _loop(self) -> None:
        """Claim while fewer than `max_in_flight` rows are being delivered; every group of rows is
        delivered by a task of its own, so one slow CRM account never holds up the others."""
        in_flight: dict[asyncio.Task[None], list[int]] = {}  # each delivering task and the rows it holds
        unsent: list[int] = []  # rows a claim leased as the stop came: no task was made for them
        rows_in_flight = 0

        def done(task: asyncio.Task[None], rows: int) -> None:
            nonlocal rows_in_flight
            in_flight.pop(task, None)
            rows_in_flight -= rows
            self._wake.set()
            if not task.cancelled() and task.exception() is not None:
                log.error("outbox: a delivery task failed", exc_info=task.exception())

        try:
            while True:
                self._wake.clear()  # before claiming, so an insert during the claim is not missed
                room = min(self.policy.claim_batch, self.policy.max_in_flight - rows_in_flight)
                groups: list[list[Claimed]] = []
                claimed_at = time.monotonic()
                if room > 0:
                    try:
                        groups = await self._claim_whole(room, unsent)
                    except Exception as exc:
                        if not database.is_transient(exc):
                            raise
                        log.warning("outbox: database unavailable (%s); retrying", exc)
                        await asyncio.sleep(1.0)
                        continue
                for group in groups:
                    task = asyncio.create_task(self._deliver(group, claimed_at))
                    in_flight[task] = [c.id for c in group]
                    rows_in_flight += len(group)
                    task.add_done_callback(functools.partial(done, rows=len(group)))
                if groups and rows_in_flight < self.policy.max_in_flight:
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.policy.poll_interval):
                        await self._wake.wait()
        finally:
            await self._stop_sending(in_flight, unsent)
            await self._settler.close()

    async def _claim_whole(self, room: int, unsent: list[int]) -> list[list[Claimed]]:
        """`claim`, shielded: a stop that lands while the claim's UPDATE runs still learns which rows it leased
        (into `unsent`), so that they are handed back with the others."""
        claiming = asyncio.ensure_future(self.claim(room))
        try:
            return await asyncio.shield(claiming)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                unsent.extend(c.id for group in await claiming for c in group)
            raise

    async def _stop_sending(self, in_flight: dict[asyncio.Task[None], list[int]], unsent: list[int]) -> None:
        """A graceful stop claims nothing more, lets the sends in flight finish within `stop_grace`, and makes
        the rows of those that did not (and of a claim the stop interrupted) due again at once, not when their
        lease runs out."""
        late: set[asyncio.Task[None]] = set()
        if in_flight:
            _, late = await asyncio.wait(list(in_flight), timeout=self.policy.stop_grace)
        unfinished = unsent + [row for task in late for row in in_flight.get(task, ())]
        for task in late:
            task.cancel()
        if unfinished:  # before waiting for the cancelled sends: however long their unwinding takes (a loaded
            # host, the agent's own stop deadline), their rows are not left leased
            try:
                await self.pool.execute(RELEASE, unfinished)
                log.info("outbox: %d delivery(ies) still sending at stop released for the next try", len(unfinished))
            except Exception as exc:  # the database is away: their leases run out instead
                log.warning("outbox: could not release %d delivery(ies) at stop: %s", len(unfinished), exc)
        if late:
            await asyncio.wait(late, timeout=self.policy.stop_grace)

    async def run_once(self) -> int:
        """Claim one batch of due rows and deliver all of it (tests and benchmarks); rows handled."""
        claimed_at = time.monotonic()
        groups = await self.claim(self.policy.claim_batch)
        await asyncio.gather(*(self._deliver(group, claimed_at) for group in groups))
        return sum(len(g) for g in groups)

    async def claim(self, limit: int) -> list[list[Claimed]]:
        """Claim up to `limit` due rows; settle the expired and the too old; group the rest by request."""
        rows = await self.pool.fetch(CLAIM, limit, self.policy.lease)
        now = datetime.now(UTC)
        live: list[Claimed] = []
        settled: list[tuple[int, str, float, str | None]] = []
        for c in map(claimed_row, rows):
            if c.expires_at is not None and now >= c.expires_at:
                settled.append((c.id, "expired", 0.0, "expired before it could be delivered"))
            elif now - c.created_at >= timedelta(seconds=self.policy.max_age):
                settled.append((c.id, "dead", 0.0, f"not delivered within {self.policy.max_age:.0f} s"))
            else:
                live.append(c)
        if settled:
            await self.pool.execute(SETTLE, *columns(settled))
        return self._groups(live)

    def _groups(self, claimed: list[Claimed]) -> list[list[Claimed]]:
        buckets: dict[tuple[str, ...], list[Claimed]] = defaultdict(list)
        for c in claimed:
            d = c.delivery
            if d.batch_key is None:
                buckets[("single", d.idempotency_key)].append(c)
            else:
                buckets[(d.enterprise, d.crm, d.kind, d.batch_key)].append(c)
        groups: list[list[Claimed]] = []
        for items in buckets.values():
            limit = max(1, self.dispatcher.batch_limit(items[0].delivery.crm, items[0].delivery.kind))
            groups.extend(items[i : i + limit] for i in range(0, len(items), limit))
        return groups

    async def _deliver(self, group: list[Claimed], claimed_at: float) -> None:
        first = group[0].delivery
        try:  # e.g. waiting for a recording: not a request, so outside the slots
            await self.dispatcher.prepare(first.crm, [c.delivery for c in group])
        except Exception:
            log.exception("outbox: %s %s prepare raised", first.crm, first.kind)
        async with self._slots:
            started = time.perf_counter()
            deadline = await self._deadline(group, claimed_at)
            try:
                async with asyncio.timeout(deadline):
                    outcome = await self.dispatcher.send(first.enterprise, first.crm, [c.delivery for c in group])
            except TimeoutError:  # cut before the lease ends: the CRM may have it; the next try must check
                outcome = SendOutcome(status="transient", error=f"no complete answer within {deadline:.0f} s")
            except Exception as exc:  # a connector bug must not lose the rows: retry them later
                log.exception("outbox: %s %s send raised", first.crm, first.kind)
                outcome = SendOutcome(status="transient", error=f"{type(exc).__name__}: {exc}")
        if self.metrics is not None:
            self.metrics.deliveries.labels(first.crm, outcome.status).inc(len(group))
            self.metrics.delivery_seconds.labels(first.crm).observe(time.perf_counter() - started)
        settled: list[tuple[int, str, float, str | None]] = []
        for c in group:
            status = outcome.items.get(c.delivery.idempotency_key, outcome.status)
            if status == "success":
                settled.append((c.id, "done", 0.0, None))
            elif status == "permanent":
                settled.append((c.id, "failed", 0.0, outcome.error or "rejected by the CRM"))
            else:
                settled.append(
                    (
                        c.id,
                        "pending",
                        self._backoff(c.attempts, outcome.retry_after),
                        outcome.error or "temporary failure",
                    )
                )
        # shielded so that a stop in the middle cannot leave a sent delivery unrecorded (arq's rule)
        await asyncio.shield(self._record(group, outcome, settled))
        keys = ",".join(c.delivery.idempotency_key for c in group[:3]) + ("…" if len(group) > 3 else "")
        log.info(
            "delivery %s %s x%d [%s] try %d: %s%s (%.0f ms)",
            first.crm,
            first.kind,
            len(group),
            keys,
            group[0].attempts,
            outcome.status,
            f" {outcome.http_status}" if outcome.http_status else "",
            outcome.duration_ms,
        )

    async def _deadline(self, group: list[Claimed], claimed_at: float) -> float:
        """How long this send may take: within its lease, renewed first when the send starts late in it."""
        lease = self.policy.lease
        elapsed = time.monotonic() - claimed_at
        if elapsed <= lease * RENEW_AFTER:
            return max(lease * SEND_SHARE - elapsed, 0.1)
        try:
            await self.pool.execute(RENEW, [c.id for c in group], lease)
        except Exception as exc:
            if not database.is_transient(exc):
                raise
            return max(lease * SEND_SHARE - elapsed, 0.1)  # not renewed: what is left of the first lease
        return lease * SEND_SHARE

    async def _record(
        self, group: list[Claimed], outcome: SendOutcome, settled: list[tuple[int, str, float, str | None]]
    ) -> None:
        """Settle the group and log its exchange once, naming every delivery it carried (`delivery_ids`;
        `delivery_id` is the first, for readers that predate batches)."""
        d = group[0].delivery
        log_row = None
        if outcome.request:  # nothing was sent (e.g. a paused account): no exchange to log
            log_row = (
                d.enterprise,
                d.crm,
                d.kind,
                outcome.request,
                outcome.response,
                "success" if outcome.ok else "error",
                outcome.error,
                outcome.http_status,
                outcome.duration_ms,
                group[0].id,
                [c.id for c in group],
            )
        await self._settler.record(settled, log_row)

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = attempts
        delay = min(float(self._wait(state)), self.policy.backoff_max)
        if retry_after is not None:  # the CRM's own word wins over our cap, within reason
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        return delay

    # -- operator actions ------------------------------------------------------------------------

    async def retry(self, delivery_id: int, enterprise: str | None = None) -> bool:
        """Make a failed, dead or expired delivery due now. False when there is no such row."""
        status = await self.pool.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = now(), created_at = now(),"
            " last_error = NULL, updated_at = now()"
            " WHERE id = $1 AND status IN ('failed', 'dead', 'expired')"
            " AND ($2::text IS NULL OR enterprise_number = $2)",
            delivery_id,
            enterprise,
        )
        if status.endswith(" 1"):
            self._wake.set()
            return True
        return False

    async def counts(self) -> dict[str, int]:
        rows = await self.pool.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    async def due_count(self) -> int:
        """How many deliveries are due now (waiting to be sent)."""
        return int(
            await self.pool.fetchval(
                "SELECT count(*) FROM deliveries"
                " WHERE status IN ('pending', 'in_progress') AND next_attempt_at <= now()"
            )
            or 0
        )

    async def oldest_due_age(self) -> float:
        age = await self.pool.fetchval(
            "SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM deliveries"
            " WHERE status IN ('pending', 'in_progress') AND next_attempt_at <= now()"
        )
        return float(age or 0.0)
