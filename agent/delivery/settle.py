"""Settling the outbox's exchanges: each outcome (the rows' new status, the integration_logs row) written in one
transaction with the others that finish close together."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.store.database import Pool

SETTLE = """
UPDATE deliveries d
SET status = u.status, last_error = u.error, updated_at = now(),
    next_attempt_at = CASE WHEN u.status = 'pending' THEN now() + make_interval(secs => u.delay)
                           ELSE d.next_attempt_at END,
    delivered_at = CASE WHEN u.status = 'done' THEN now() ELSE d.delivered_at END
FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::text[]) AS u(id, status, delay, error)
WHERE d.id = u.id
"""

LOG_EXCHANGE = """
INSERT INTO integration_logs (enterprise_number, integration_type, event_type, request_data, response_data,
                              status, error_message, http_status, duration_ms, delivery_id, delivery_ids)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""

Settled = list[tuple[int, str, float, str | None]]
LogRow = tuple[Any, ...]


class Settler:
    """Writes the outcomes of the exchanges that finish close together in one transaction.

    Each caller waits until its own outcome is committed; if the write fails, it gets the error and
    its rows stay claimed until the lease runs out (then they are sent again, which the CRM
    recognises by the idempotency key / externalId).
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._pending: list[tuple[Settled, LogRow | None, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, settled: Settled, log_row: LogRow | None) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((settled, log_row, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the exchanges finishing in this loop turn join the batch
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    logs = [row for _, row, _ in batch if row is not None]
                    if logs:
                        await conn.executemany(LOG_EXCHANGE, logs)
                    await conn.execute(SETTLE, *columns([r for settled, _, _ in batch for r in settled]))
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


def columns(settled: list[tuple[int, str, float, str | None]]) -> tuple[list[Any], ...]:
    return tuple(list(column) for column in zip(*settled, strict=True))
