"""The `calls` table: a stored call from an ended CallEvent and back (the planner writes them, in the
same transaction as the call's deliveries)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.tracking.event import CallEvent
from agent.web.metrics import Metrics

FORWARDED_TO = "forwarded_to"

INSERT = """
INSERT INTO calls (call_id, enterprise_number, pbx, direction, phone, did, extensions, answered_by, result,
                   ring_seconds, talk_seconds, started_at, ended_at, recording, details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (enterprise_number, call_id) DO NOTHING
"""


def row(event: CallEvent) -> tuple[object, ...]:
    return (
        event.call_id,
        event.enterprise,
        event.pbx or "",
        event.direction,
        event.phone,
        event.did,
        list(event.extensions),
        event.answered_by,
        event.result,
        event.ring_seconds,
        event.talk_seconds,
        event.started_at,
        event.ended_at,
        event.recording,
        json.loads(json.dumps(_details(event), default=str)),
    )


def _details(event: CallEvent) -> dict[str, Any]:
    """`extra`, and `forwarded_to` when set (kept beside it: the table has no column of its own for it)."""
    if event.forwarded_to is None:
        return event.extra
    return {**event.extra, FORWARDED_TO: event.forwarded_to}


def event_from_row(r: Mapping[str, Any]) -> CallEvent:
    """The `ended` CallEvent a stored call came from (for redelivery and backfill)."""
    extensions = tuple(r["extensions"] or ())
    extra = dict(r["details"] or {})
    forwarded_to = extra.pop(FORWARDED_TO, None)
    return CallEvent(
        event="ended",
        call_id=r["call_id"],
        enterprise=r["enterprise_number"],
        direction=r["direction"],
        phone=r["phone"],
        did=r["did"],
        extension=r["answered_by"] or (extensions[-1] if extensions else None),
        at=r["ended_at"],
        extensions=extensions,
        answered_by=r["answered_by"],
        result=r["result"],
        ring_seconds=r["ring_seconds"],
        talk_seconds=r["talk_seconds"],
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        recording=r["recording"],
        pbx=r["pbx"],
        forwarded_to=forwarded_to,
        extra=extra,
    )


def count_ended(metrics: Metrics, event: CallEvent) -> None:
    if event.event == "ended":
        metrics.calls_ended.labels(event.direction, event.result or "").inc()
