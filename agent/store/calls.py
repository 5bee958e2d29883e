"""The `calls` table: a stored call from an ended CallEvent and back (the planner writes them, in the
same transaction as the call's deliveries)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.tracking.event import CallEvent
from agent.web.metrics import Metrics

FORWARDED_TO = "forwarded_to"
OWNER = "owner"
# whose call a stored call is (CallEvent.extension), in SQL: `details.owner` when it is kept, else the rule
# `implied_owner` applies
OWNER_SQL = (
    "CASE WHEN details ? 'owner' THEN details ->> 'owner'"
    " ELSE coalesce(answered_by, CASE WHEN cardinality(extensions) = 1 THEN extensions[1] END) END"
)

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


def implied_owner(answered_by: str | None, extensions: tuple[str, ...]) -> str | None:
    """Whose call it is when nothing else is said: who answered, else the one phone it rang."""
    return answered_by or (extensions[0] if len(extensions) == 1 else None)


def _details(event: CallEvent) -> dict[str, Any]:
    """`extra`, and beside it what the table has no column for: `forwarded_to` when set, and the call's owner
    (`extension`) when it is not the one `implied_owner` gives (a group call nobody answered is nobody's; the
    manager smart redirect named owns a call that rang several phones)."""
    details = dict(event.extra)
    if event.forwarded_to is not None:
        details[FORWARDED_TO] = event.forwarded_to
    if event.extension != implied_owner(event.answered_by, event.extensions):
        details[OWNER] = event.extension
    return details


def event_from_row(r: Mapping[str, Any]) -> CallEvent:
    """The `ended` CallEvent a stored call came from (for redelivery and backfill)."""
    extensions = tuple(r["extensions"] or ())
    extra = dict(r["details"] or {})
    forwarded_to = extra.pop(FORWARDED_TO, None)
    owner = extra.pop(OWNER) if OWNER in extra else implied_owner(r["answered_by"], extensions)
    return CallEvent(
        event="ended",
        call_id=r["call_id"],
        enterprise=r["enterprise_number"],
        direction=r["direction"],
        phone=r["phone"],
        did=r["did"],
        extension=owner,
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
