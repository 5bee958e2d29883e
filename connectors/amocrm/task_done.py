"""Completing a number's call-back tasks once the customer is reached: a `task_done` delivery (planned for an
answered call, in or out) -> `PATCH /api/v4/tasks/{id}` with `is_completed` and `result.text` for each open
task the agent made for the number (amocrm-api-php examples/tasks_actions.php: `setIsCompleted(true)`,
`setResult(...)`, `updateOne`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from connectors.amocrm import problem
from connectors.amocrm.contacts import digits
from connectors.amocrm.session import Session, StepFailed
from connectors.base import Delivery, SendOutcome
from connectors.missed_tasks import PENDING, MissedTasks


async def complete_tasks(
    session: Session, pool: Any, delivery: Delivery, phone_locks: dict[tuple[str, str], asyncio.Lock]
) -> SendOutcome:
    """`task_done`: the number was reached (an answered call); its open call-back tasks are completed with a
    result text (`PATCH /api/v4/tasks/{id}`, `is_completed` + `result.text`: amocrm-api-php
    examples/tasks_actions.php), and a task still to be made for an older missed call will not be."""
    p = delivery.payload
    phone = digits(p["phone"])
    async with phone_locks.setdefault((delivery.enterprise, phone), asyncio.Lock()):
        missed = MissedTasks(pool, "amocrm_missed_tasks", delivery.enterprise, phone, p["call_id"])
        if isinstance(p.get("at"), int):
            await missed.reached(datetime.fromtimestamp(p["at"], UTC))
        done: list[int] = []
        try:
            for row in await missed.latest():
                waiting_for = missed.waits_for(row)
                if waiting_for is not None:
                    error = f"waiting to learn whether call {waiting_for}'s call-back task for this number was made"
                    return session.outcome("transient", error, None, retry_after=5.0)
                if row["task_id"] == PENDING:
                    continue
                task_id = int(row["task_id"])
                body = {"is_completed": True, "result": {"text": p["result"]}}
                exchange = await session.request("PATCH", f"/api/v4/tasks/{task_id}", body=body)
                if exchange.http_status not in (204, 404):  # gone from amoCRM: nothing to complete
                    outcome = problem.outcome(exchange)
                    if not outcome.ok:
                        return session.outcome(outcome.status, outcome.error, exchange, retry_after=outcome.retry_after)
                await missed.forget(task_id)
                done.append(task_id)
        except StepFailed as failed:
            return failed.outcome
        last = session.exchanges[-1] if session.exchanges else None
        note = f"completed {done}" if done else "no open call-back task for this number"
        return session.outcome("success", None, last, steps={"task_done": note})
