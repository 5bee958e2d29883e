"""Deleting what is past its keeping time ([retention]), so a database left alone for years does not fill its disk.

Once `FIRST_RUN_S` after start, then about hourly (with jitter, so agents started together spread out), one
run deletes, in small batches each its own short transaction:
- `integration_logs` older than `logs_days`;
- `deliveries` in a final state (done, expired, dead, failed) last changed more than `deliveries_days` ago,
  with their `amocrm_call_steps` in the same statement; pending and in-progress rows are never touched;
- `calls` older than `calls_days` (0 by default: kept);
- expired admin sessions, and used sign-in links and OAuth states a day past their expiry (as admin.auth and
  the amoCRM token store do at each sign-in).

Agents sharing one database take turns: a run holds a session advisory lock for its duration, and an agent
that cannot take it skips that run. Space freed by deletes is reused by PostgreSQL (autovacuum); it is not
returned to the operating system.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asyncpg.pool import PoolConnectionProxy

from agent.config.sections import RetentionSection
from agent.store import database
from agent.web.health import ComponentHealth
from agent.web.metrics import Metrics

log = logging.getLogger(__name__)

# The advisory lock of a run: two-int form, a class of its own ("pbxr") so it meets neither the PBX locks
# (class "pbxa", agent.ingest.locks) nor the migrations' one-bigint lock (agent.store.migrate).
LOCK_CLASS = 0x70627872
LOCK_ID = 1

BATCH = 5000
PAUSE_S = 0.05  # between batches: other work on the database goes first
FIRST_RUN_S = 300.0
INTERVAL_S = 3600.0
JITTER = 0.1  # +-10 % of the interval

FINAL = "('done', 'expired', 'dead', 'failed')"

# `= ANY(ARRAY(...))`, not `IN (...)`: the batch's ids are gathered first and deleted through the primary key;
# with IN, the generic plan of the prepared statement hash-joins them against a scan of the whole table.
DELETE_LOGS = """
DELETE FROM integration_logs WHERE id = ANY(ARRAY(
    SELECT id FROM integration_logs WHERE created_at < now() - make_interval(days => $1)
    ORDER BY created_at LIMIT $2))
"""

# Rows are locked as they are picked, and one locked by someone else (an operator's Retry making it pending)
# is skipped, not waited for; a row that changed before it was picked is checked again and stays. The outer
# conditions repeat the inner ones so the delete itself can never take a row that is not final and old.
DELETE_DELIVERIES = f"""
WITH gone AS (
    DELETE FROM deliveries WHERE id = ANY(ARRAY(
        SELECT id FROM deliveries
        WHERE status IN {FINAL} AND updated_at < now() - make_interval(days => $1)
        ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED))
    AND status IN {FINAL} AND updated_at < now() - make_interval(days => $1)
    RETURNING idempotency_key),
steps AS (
    DELETE FROM amocrm_call_steps s USING gone WHERE s.idempotency_key = gone.idempotency_key RETURNING 1)
SELECT (SELECT count(*) FROM gone) AS deliveries, (SELECT count(*) FROM steps) AS steps
"""

# calls has a two-column key: the batch is taken by ctid (a TID scan), safe within one statement's snapshot.
DELETE_CALLS = """
DELETE FROM calls WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM calls WHERE listed_at < now() - make_interval(days => $1)
    ORDER BY listed_at LIMIT $2))
AND listed_at < now() - make_interval(days => $1)
"""

# Small tables, already trimmed at each insert; one statement each.
EXPIRED = {
    "admin_sessions": "DELETE FROM admin_sessions WHERE expires_at < now()",
    "admin_links_used": "DELETE FROM admin_links_used WHERE expires_at < now() - interval '1 day'",
    "amocrm_oauth_states": "DELETE FROM amocrm_oauth_states WHERE expires_at < now() - interval '1 day'",
}


def next_delay(interval: float, jitter: float, rand: Callable[[], float] = random.random) -> float:
    """`interval` +- `jitter` x interval; `rand()` is in [0, 1)."""
    return interval * (1 + jitter * (2 * rand() - 1))


def _count(status: str) -> int:
    """asyncpg's command tag, e.g. `DELETE 42` -> 42."""
    return int(status.rsplit(" ", 1)[-1])


@dataclass
class RunResult:
    """One run: rows deleted per table, or `skipped` when another agent was running one."""

    deleted: dict[str, int] = field(default_factory=dict)
    skipped: bool = False

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def add(self, table: str, n: int) -> None:
        if n:
            self.deleted[table] = self.deleted.get(table, 0) + n


class Pruner:
    def __init__(
        self,
        pool: database.Pool,
        settings: RetentionSection,
        metrics: Metrics | None = None,
        health: ComponentHealth | None = None,
        *,
        batch: int = BATCH,
        between_batches: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.health = health
        self.batch = batch
        self.between_batches = between_batches or (lambda: asyncio.sleep(PAUSE_S))
        if health is not None:
            health.set("ok", **self._horizons())

    def _horizons(self) -> dict[str, Any]:
        s = self.settings
        return {"logs_days": s.logs_days, "deliveries_days": s.deliveries_days, "calls_days": s.calls_days}

    async def run(self, first: float = FIRST_RUN_S, interval: float = INTERVAL_S) -> None:
        """The component: a run `first` seconds after start, then every `interval` (+-JITTER). A failed run is
        logged and reported in /health; the next one comes at its time."""
        delay = next_delay(first, JITTER)
        while True:
            self._note(next_run_at=time.time() + delay)
            await asyncio.sleep(delay)
            await self.run_reported()
            delay = next_delay(interval, JITTER)

    async def run_reported(self) -> RunResult | None:
        """run_once(), with its outcome in the log and /health; None when it failed."""
        started = time.time()
        try:
            result = await self.run_once()
        except Exception as exc:  # the database away, a statement timeout: the next run tries again
            log.warning("retention: run failed: %s: %s", type(exc).__name__, exc)
            if self.health is not None:
                self.health.set("down", last_run_at=started, last_error=f"{type(exc).__name__}: {exc}")
            return None
        if result.total:
            log.info(
                "retention: deleted %s in %.1f s",
                ", ".join(f"{n} {t}" for t, n in result.deleted.items()),
                time.time() - started,
            )
        if self.health is not None:
            self.health.set(
                "ok", last_run_at=started, last_error=None, last_skipped=result.skipped, last_deleted=result.deleted
            )
        return result

    async def run_once(self) -> RunResult:
        """One run, if no other agent is running one (then `skipped`)."""
        result = RunResult()
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, LOCK_ID):
                result.skipped = True
                return result
            try:
                await self._prune(conn, result)
            finally:
                if not conn.is_closed():
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS, LOCK_ID)
        return result

    async def _prune(self, conn: PoolConnectionProxy[Any], result: RunResult) -> None:
        s = self.settings
        if s.logs_days > 0:
            await self._batches(
                result, "integration_logs", lambda: self._delete(conn, DELETE_LOGS, s.logs_days, "integration_logs")
            )
        if s.deliveries_days > 0:
            await self._batches(result, "deliveries", lambda: self._deliveries(conn, s.deliveries_days))
        if s.calls_days > 0:
            await self._batches(result, "calls", lambda: self._delete(conn, DELETE_CALLS, s.calls_days, "calls"))
        for table, sql in EXPIRED.items():
            self._count_into(result, table, _count(await conn.execute(sql)))

    async def _batches(self, result: RunResult, table: str, batch: Callable[[], Awaitable[dict[str, int]]]) -> None:
        """Batch after batch until one comes back short."""
        while True:
            counts = await batch()
            for name, n in counts.items():
                self._count_into(result, name, n)
            if counts.get(table, 0) < self.batch:
                return
            await self.between_batches()

    async def _delete(self, conn: PoolConnectionProxy[Any], sql: str, days: int, table: str) -> dict[str, int]:
        return {table: _count(await conn.execute(sql, days, self.batch))}

    async def _deliveries(self, conn: PoolConnectionProxy[Any], days: int) -> dict[str, int]:
        row = await conn.fetchrow(DELETE_DELIVERIES, days, self.batch)
        assert row is not None  # the statement's SELECT always gives one row
        return {"deliveries": int(row["deliveries"]), "amocrm_call_steps": int(row["steps"])}

    def _count_into(self, result: RunResult, table: str, n: int) -> None:
        result.add(table, n)
        if n and self.metrics is not None:
            self.metrics.pruned_rows.labels(table).inc(n)

    def _note(self, **details: Any) -> None:
        if self.health is not None:
            self.health.details.update(details)
