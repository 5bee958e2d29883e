"""Ended calls into the `calls` table, off the AMI path: the reader only enqueues."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from agent import database
from agent.callevent import CallEvent
from agent.database import Pool
from agent.metrics import Metrics

log = logging.getLogger(__name__)

INSERT = """
INSERT INTO calls (call_id, enterprise_number, pbx, direction, phone, did, extensions, answered_by, result,
                   ring_seconds, talk_seconds, started_at, ended_at, recording, details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (enterprise_number, call_id) DO NOTHING
"""


def row(event: CallEvent) -> tuple[object, ...]:
    details = {k: v for k, v in event.extra.items() if k != "pbx"}
    return (event.call_id, event.enterprise, str(event.extra.get("pbx", "")), event.direction, event.phone,
            event.did, list(event.extensions), event.answered_by, event.result, event.ring_seconds,
            event.talk_seconds, event.started_at, event.ended_at, event.recording, json.loads(json.dumps(
                details, default=str)))


def event_from_row(r: Mapping[str, Any]) -> CallEvent:
    """The `ended` CallEvent a stored call came from (for redelivery and backfill)."""
    extensions = tuple(r["extensions"] or ())
    extra = dict(r["details"] or {})
    extra["pbx"] = r["pbx"]
    return CallEvent(
        event="ended", call_id=r["call_id"], enterprise=r["enterprise_number"], direction=r["direction"],
        phone=r["phone"], did=r["did"], extension=r["answered_by"] or (extensions[-1] if extensions else None),
        at=r["ended_at"], extensions=extensions, answered_by=r["answered_by"], result=r["result"],
        ring_seconds=r["ring_seconds"], talk_seconds=r["talk_seconds"], started_at=r["started_at"],
        ended_at=r["ended_at"], recording=r["recording"], extra=extra)


class CallStore:
    """Takes CallEvents without waiting; a background task writes the ended ones, retrying while the
    database is away so that no call is lost to a database restart."""

    def __init__(self, pool: Pool, metrics: Metrics) -> None:
        self.pool = pool
        self.metrics = metrics
        self.queue: asyncio.Queue[CallEvent] = asyncio.Queue()

    def put(self, event: CallEvent) -> None:
        if event.event == "ended":
            self.metrics.calls_ended.labels(event.direction, event.result or "").inc()
            self.queue.put_nowait(event)

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            delay = 0.5
            while True:
                try:
                    await self.pool.execute(INSERT, *row(event))
                    break
                except Exception as exc:
                    if not database.is_transient(exc):
                        log.error("calls: call %s cannot be stored: %s; event: %s", event.call_id, exc,
                                  event.to_json())
                        break
                    log.warning("calls: cannot store call %s yet (%s); retrying", event.call_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
