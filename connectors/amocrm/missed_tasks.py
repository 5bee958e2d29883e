"""`amocrm_missed_tasks`: the call-back tasks the agent made, per caller's number, so that a number gets one
open task however often it calls.

A task being sent is held as a pending row (task id 0) from just before its request goes out until amoCRM's
answer: another missed call from the number meanwhile waits (a transient outcome) instead of making a second
task, since the first may exist even when its answer was lost. A pending row older than `PENDING_FOR` is
taken as abandoned.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

PENDING = 0  # amoCRM's ids are positive
PENDING_FOR = timedelta(minutes=10)
OPEN_TASKS_CHECKED = 3


class MissedTasks:
    def __init__(self, pool: Any, enterprise: str, phone: str, call_id: str) -> None:
        self.pool = pool
        self.enterprise = enterprise
        self.phone = phone
        self.call_id = call_id

    async def latest(self) -> list[Any]:
        """The number's newest rows (task_id, call_id, created_at)."""
        return list(
            await self.pool.fetch(
                "SELECT task_id, call_id, created_at FROM amocrm_missed_tasks WHERE enterprise_number = $1"
                " AND phone = $2 ORDER BY created_at DESC LIMIT $3",
                self.enterprise,
                self.phone,
                OPEN_TASKS_CHECKED,
            )
        )

    def waits_for(self, row: Any) -> str | None:
        """The call whose task is unconfirmed (another call's pending row, recent enough), else None."""
        if row["task_id"] != PENDING or row["call_id"] == self.call_id:
            return None
        return str(row["call_id"]) if datetime.now(UTC) - row["created_at"] < PENDING_FOR else None

    async def hold(self) -> None:
        """Just before the task's request goes out (taking over an abandoned pending row of the number)."""
        await self.pool.execute(
            "INSERT INTO amocrm_missed_tasks (enterprise_number, phone, task_id, call_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (enterprise_number, phone, task_id) DO UPDATE SET call_id = EXCLUDED.call_id,"
            " created_at = now()",
            self.enterprise,
            self.phone,
            PENDING,
            self.call_id,
        )

    async def made(self, task_id: int) -> None:
        await self.pool.execute(
            "INSERT INTO amocrm_missed_tasks (enterprise_number, phone, task_id, call_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            self.enterprise,
            self.phone,
            task_id,
            self.call_id,
        )
        await self.release()

    async def release(self) -> None:
        """Our pending row goes (amoCRM answered, yes or no)."""
        await self.forget(PENDING, only_ours=True)

    async def forget(self, task_id: int, *, only_ours: bool = False) -> None:
        await self.pool.execute(
            "DELETE FROM amocrm_missed_tasks WHERE enterprise_number = $1 AND phone = $2 AND task_id = $3"
            " AND (NOT $4 OR call_id = $5)",
            self.enterprise,
            self.phone,
            task_id,
            only_ours,
            self.call_id,
        )
