"""The outbox's rows as claimed: the SQL that inserts, claims, renews and releases them, and a claimed row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from connectors.base import Delivery


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


# A send that outlives its lease would let another worker claim and send the same rows: before a send that
# starts late in its lease (it waited for a recording or a request slot), the lease is renewed.
RENEW = """
UPDATE deliveries SET next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
WHERE id = ANY($1::bigint[]) AND status = 'in_progress'
"""

# At a graceful stop, rows whose send did not finish are due again at once (for this agent's next start or
# another agent), instead of when their lease runs out; a row already settled is left alone.
RELEASE = """
UPDATE deliveries SET status = 'pending', next_attempt_at = now(), updated_at = now()
WHERE id = ANY($1::bigint[]) AND status = 'in_progress'
"""


def claimed_row(row: asyncpg.Record) -> Claimed:
    payload = row["payload"]
    return Claimed(
        id=row["id"],
        delivery=Delivery(
            idempotency_key=row["idempotency_key"],
            enterprise=row["enterprise_number"],
            crm=row["integration_type"],
            kind=row["kind"],
            payload=payload if isinstance(payload, dict) else json.loads(payload),
            batch_key=row["batch_key"],
        ),
        attempts=row["attempts"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )
