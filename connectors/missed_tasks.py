"""The call-back tasks the agent made for missed calls, per caller's number and CRM (`amocrm_missed_tasks`,
`retailcrm_missed_tasks`), so that a number gets one open task however often it calls, and the task is closed
once the customer is reached.

A task being sent is held as a pending row (task id 0) from just before its request goes out until the CRM's
answer: another missed call from the number meanwhile waits (a transient outcome) instead of making a second
task, since the first may exist even when its answer was lost. A pending row older than `PENDING_FOR` is
taken as abandoned.

An answered call with the number (`reached`) leaves a row with task id -1 stamped with the call's time: a
task whose missed call is older than that (its delivery was late, the CRM was down) is not made at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

PENDING = 0  # the CRMs' ids are positive
REACHED = -1
PENDING_FOR = timedelta(minutes=10)
OPEN_TASKS_CHECKED = 3
Table = Literal["amocrm_missed_tasks", "retailcrm_missed_tasks"]


class MissedTasks:
    def __init__(self, pool: Any, table: Table, enterprise: str, phone: str, call_id: str) -> None:
        self.pool = pool
        self.table = table
        self.enterprise = enterprise
        self.phone = phone
        self.call_id = call_id

    async def latest(self) -> list[Any]:
        """The number's newest task rows (task_id, call_id, created_at), pending ones included."""
        return list(
            await self.pool.fetch(
                f"SELECT task_id, call_id, created_at FROM {self.table} WHERE enterprise_number = $1"
                " AND phone = $2 AND task_id <> $4 ORDER BY created_at DESC LIMIT $3",
                self.enterprise,
                self.phone,
                OPEN_TASKS_CHECKED,
                REACHED,
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
            f"INSERT INTO {self.table} (enterprise_number, phone, task_id, call_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (enterprise_number, phone, task_id) DO UPDATE SET call_id = EXCLUDED.call_id,"
            " created_at = now()",
            self.enterprise,
            self.phone,
            PENDING,
            self.call_id,
        )

    async def made(self, task_id: int) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.table} (enterprise_number, phone, task_id, call_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            self.enterprise,
            self.phone,
            task_id,
            self.call_id,
        )
        await self.release()

    async def release(self) -> None:
        """Our pending row goes (the CRM answered, yes or no)."""
        await self.forget(PENDING, only_ours=True)

    async def forget(self, task_id: int, *, only_ours: bool = False) -> None:
        await self.pool.execute(
            f"DELETE FROM {self.table} WHERE enterprise_number = $1 AND phone = $2 AND task_id = $3"
            " AND (NOT $4 OR call_id = $5)",
            self.enterprise,
            self.phone,
            task_id,
            only_ours,
            self.call_id,
        )

    async def reached(self, at: datetime) -> None:
        """An answered call with the number at `at` (the newest one counts)."""
        await self.pool.execute(
            f"INSERT INTO {self.table} (enterprise_number, phone, task_id, call_id, created_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (enterprise_number, phone, task_id) DO UPDATE SET"
            f" call_id = EXCLUDED.call_id, created_at = EXCLUDED.created_at WHERE {self.table}.created_at"
            " < EXCLUDED.created_at",
            self.enterprise,
            self.phone,
            REACHED,
            self.call_id,
            at,
        )

    async def reached_since(self, at: datetime) -> bool:
        """Was the number reached (an answered call) at or after `at`?"""
        last = await self.pool.fetchval(
            f"SELECT created_at FROM {self.table} WHERE enterprise_number = $1 AND phone = $2 AND task_id = $3",
            self.enterprise,
            self.phone,
            REACHED,
        )
        return last is not None and last >= at
