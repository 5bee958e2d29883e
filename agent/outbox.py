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
- Every exchange is written to integration_logs (masked by the connector) with status and timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
from tenacity import RetryCallState, Retrying, wait_random_exponential

from agent import database
from agent.config import OutboxSection
from agent.database import Pool
from agent.metrics import Metrics
from connectors.base import Delivery, SendOutcome

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "deliveries"
MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class OutboxPolicy:
    max_age: float = 24 * 3600.0
    lease: float = 60.0
    claim_batch: int = 200
    concurrency: int = 16
    backoff_first: float = 1.0
    backoff_max: float = 600.0
    poll_interval: float = 5.0
    # per CRM account: after this many transient failures in a row, pause it for the cool-down
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    account_concurrency: int = 4


def policy_from(section: OutboxSection) -> OutboxPolicy:
    return OutboxPolicy(max_age=section.max_age, lease=section.lease,
                        account_concurrency=section.account_concurrency,
                        breaker_threshold=section.breaker_threshold, breaker_cooldown=section.breaker_cooldown)


class Dispatcher(Protocol):
    """Knows the CRMs: how many deliveries of a kind go in one request, and how to send them."""

    def batch_limit(self, crm: str, kind: str) -> int: ...

    async def send(self, enterprise: str, crm: str, deliveries: Sequence[Delivery]) -> SendOutcome: ...


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    delivery: Delivery
    attempts: int
    created_at: datetime
    expires_at: datetime | None


CLAIM = """
WITH due AS (
    SELECT id FROM deliveries
    WHERE status IN ('pending', 'in_progress') AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d
SET status = 'in_progress', attempts = d.attempts + 1,
    next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
FROM due WHERE d.id = due.id
RETURNING d.id, d.idempotency_key, d.enterprise_number, d.integration_type, d.kind, d.payload,
          d.attempts, d.created_at, d.expires_at, d.batch_key
"""

INSERT = """
INSERT INTO deliveries (idempotency_key, enterprise_number, integration_type, kind, payload, expires_at,
                        batch_key)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[],
                     $7::text[])
ON CONFLICT (idempotency_key) DO NOTHING
"""


class Outbox:
    def __init__(self, pool: Pool, dispatcher: Dispatcher, metrics: Metrics | None = None,
                 policy: OutboxPolicy | None = None) -> None:
        self.pool = pool
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.policy = policy or OutboxPolicy()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self._wait = wait_random_exponential(multiplier=self.policy.backoff_first, max=self.policy.backoff_max)

    # -- producing -----------------------------------------------------------------------------

    async def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        """Store deliveries (duplicates by key are ignored); return how many were new."""
        if not deliveries:
            return 0
        now = datetime.now(UTC)
        columns: list[list[Any]] = [[] for _ in range(7)]
        for d in deliveries:
            expires = now + timedelta(seconds=d.expires_after) if d.expires_after is not None else None
            for column, value in zip(columns, (d.idempotency_key, d.enterprise, d.crm, d.kind,
                                               d.payload, expires, d.batch_key), strict=True):
                column.append(value)
        async with self.pool.acquire() as conn, conn.transaction():
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
        if not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.remove_listener(NOTIFY_CHANNEL, callback)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # before claiming, so an insert during the claim is not missed
            try:
                handled = await self.run_once()
            except Exception as exc:
                if not database.is_transient(exc):
                    raise
                log.warning("outbox: database unavailable (%s); retrying", exc)
                handled = 0
                await asyncio.sleep(1.0)
            if handled:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.policy.poll_interval)

    async def run_once(self) -> int:
        """Claim one batch of due rows and deliver it; return how many rows were handled."""
        rows = await self.pool.fetch(CLAIM, self.policy.claim_batch, self.policy.lease)
        if not rows:
            return 0
        claimed = [_claimed(r) for r in rows]
        now = datetime.now(UTC)
        live: list[Claimed] = []
        for c in claimed:
            if c.expires_at is not None and now >= c.expires_at:
                await self._finish([c], "expired", "expired before it could be delivered")
            elif now - c.created_at >= timedelta(seconds=self.policy.max_age):
                await self._finish([c], "dead", f"not delivered within {self.policy.max_age:.0f} s")
            else:
                live.append(c)
        await asyncio.gather(*(self._deliver(group) for group in self._groups(live)))
        return len(claimed)

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
            groups.extend(items[i:i + limit] for i in range(0, len(items), limit))
        return groups

    async def _deliver(self, group: list[Claimed]) -> None:
        first = group[0].delivery
        async with self._slots:
            started = time.perf_counter()
            try:
                outcome = await self.dispatcher.send(first.enterprise, first.crm, [c.delivery for c in group])
            except Exception as exc:  # a connector bug must not lose the rows: retry them later
                log.exception("outbox: %s %s send raised", first.crm, first.kind)
                outcome = SendOutcome(status="transient", error=f"{type(exc).__name__}: {exc}")
        if self.metrics is not None:
            self.metrics.deliveries.labels(first.crm, outcome.status).inc(len(group))
            self.metrics.delivery_seconds.labels(first.crm).observe(time.perf_counter() - started)
        if outcome.request:
            await self._log_exchange(group, outcome)
        by_status: dict[str, list[Claimed]] = defaultdict(list)
        for c in group:
            item_status = outcome.items.get(c.delivery.idempotency_key, outcome.status)
            by_status[item_status].append(c)
        for status, items in by_status.items():
            await self._settle(items, status, outcome)
        keys = ",".join(c.delivery.idempotency_key for c in group[:3]) + ("…" if len(group) > 3 else "")
        log.info("delivery %s %s x%d [%s] try %d: %s%s (%.0f ms)", first.crm, first.kind, len(group), keys,
                 group[0].attempts, outcome.status, f" {outcome.http_status}" if outcome.http_status else "",
                 outcome.duration_ms)

    async def _settle(self, items: list[Claimed], status: str, outcome: SendOutcome) -> None:
        if status == "success":
            await self._finish(items, "done", None)
        elif status == "permanent":
            await self._finish(items, "failed", outcome.error or "rejected by the CRM")
        else:
            for c in items:
                delay = self._backoff(c.attempts, outcome.retry_after)
                await self.pool.execute(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = now() + make_interval(secs => $2),"
                    " last_error = $3, updated_at = now() WHERE id = $1",
                    c.id, delay, outcome.error or "temporary failure")

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = attempts
        delay = min(float(self._wait(state)), self.policy.backoff_max)
        if retry_after is not None:  # the CRM's own word wins over our cap, within reason
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        return delay

    async def _finish(self, items: list[Claimed], status: str, error: str | None) -> None:
        await self.pool.execute(
            "UPDATE deliveries SET status = $2, last_error = $3, updated_at = now(),"
            " delivered_at = CASE WHEN $2 = 'done' THEN now() ELSE delivered_at END WHERE id = ANY($1::bigint[])",
            [c.id for c in items], status, error)

    async def _log_exchange(self, group: list[Claimed], outcome: SendOutcome) -> None:
        d = group[0].delivery
        await self.pool.execute(
            "INSERT INTO integration_logs (enterprise_number, integration_type, event_type, request_data,"
            " response_data, status, error_message, http_status, duration_ms, delivery_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            d.enterprise, d.crm, d.kind, outcome.request, outcome.response,
            "success" if outcome.ok else "error", outcome.error, outcome.http_status, outcome.duration_ms,
            group[0].id)

    # -- operator actions ------------------------------------------------------------------------

    async def retry(self, delivery_id: int, enterprise: str | None = None) -> bool:
        """Make a failed, dead or expired delivery due now. False when there is no such row."""
        status = await self.pool.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = now(), created_at = now(),"
            " last_error = NULL, updated_at = now()"
            " WHERE id = $1 AND status IN ('failed', 'dead', 'expired')"
            " AND ($2::text IS NULL OR enterprise_number = $2)",
            delivery_id, enterprise)
        if status.endswith(" 1"):
            self._wake.set()
            return True
        return False

    async def counts(self) -> dict[str, int]:
        rows = await self.pool.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    async def oldest_due_age(self) -> float:
        age = await self.pool.fetchval(
            "SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM deliveries"
            " WHERE status IN ('pending', 'in_progress') AND next_attempt_at <= now()")
        return float(age or 0.0)


def _claimed(row: asyncpg.Record) -> Claimed:
    payload = row["payload"]
    return Claimed(
        id=row["id"],
        delivery=Delivery(
            idempotency_key=row["idempotency_key"], enterprise=row["enterprise_number"],
            crm=row["integration_type"], kind=row["kind"],
            payload=payload if isinstance(payload, dict) else json.loads(payload),
            batch_key=row["batch_key"],
        ),
        attempts=row["attempts"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


STALE_DUE_S = 300.0


async def outbox_probe(outbox: Outbox, metrics: Metrics | None = None) -> dict[str, Any]:
    """For /health: the outbox is degraded when something due has waited more than 5 minutes."""
    counts = await outbox.counts()
    oldest = await outbox.oldest_due_age()
    if metrics is not None:
        for status in ("pending", "in_progress", "done", "failed", "dead", "expired"):
            metrics.deliveries_by_status.labels(status).set(counts.get(status, 0))
    if oldest > STALE_DUE_S:
        raise RuntimeError(f"the oldest due delivery has waited {oldest:.0f} s")
    return {"due_oldest_seconds": round(oldest, 1), **{k: v for k, v in counts.items() if k != "done"}}
