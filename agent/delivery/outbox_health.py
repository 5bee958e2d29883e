"""The outbox as /health and /metrics see it: rows by status and CRM, and how long the oldest due one waited."""

from __future__ import annotations

from typing import Any

from agent.delivery.outbox import Outbox
from agent.web.metrics import Metrics

STALE_DUE_S = 300.0
STATUSES = ("pending", "in_progress", "done", "failed", "dead", "expired")


async def _count_by_crm(outbox: Outbox, metrics: Metrics) -> None:
    """Per CRM: rows by status, plus `due` (waiting to be sent now)."""
    rows = await outbox.pool.fetch(
        "SELECT integration_type AS crm, status, count(*) AS n,"
        " count(*) FILTER (WHERE status IN ('pending', 'in_progress') AND next_attempt_at <= now()) AS due"
        " FROM deliveries GROUP BY integration_type, status"
    )
    found: dict[str, dict[str, int]] = {}
    for r in rows:
        per = found.setdefault(r["crm"], {})
        per[r["status"]] = int(r["n"])
        per["due"] = per.get("due", 0) + int(r["due"])
    for crm, per in found.items():
        for status in (*STATUSES, "due"):
            metrics.deliveries_by_crm.labels(crm, status).set(per.get(status, 0))


async def outbox_probe(outbox: Outbox, metrics: Metrics | None = None, *, agents: int = 1) -> dict[str, Any]:
    """For /health: the outbox is degraded when something due has waited more than 5 minutes. `agents`: how
    many agents send from this database (each at its share of every CRM account's rate limit)."""
    counts = await outbox.counts()
    oldest = await outbox.oldest_due_age()
    if metrics is not None:
        for status in STATUSES:
            metrics.deliveries_by_status.labels(status).set(counts.get(status, 0))
        await _count_by_crm(outbox, metrics)
    if oldest > STALE_DUE_S:
        raise RuntimeError(f"the oldest due delivery has waited {oldest:.0f} s")
    return {
        "due_oldest_seconds": round(oldest, 1),
        "agents": agents,
        **{k: v for k, v in counts.items() if k != "done"},
    }
