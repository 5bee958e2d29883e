"""Sending a missed call's call-back `task` to RetailCRM (tasks API, crm-api.md has no section on it: the
contract below is the official PHP client's, api-client-php src/ResourceGroup/Tasks.php, src/Model/Entity/
Tasks/Task.php and tests/src/ResourceGroup/TasksTest.php *(mock)*):

- `POST /api/v5/tasks/create`, form field `task` = JSON `{text, datetime ("Y-m-d H:i", account time),
  performerId, customer: {id}, phone, commentary}` (+ `site`) -> `{"success": true, "id": N}`;
- `GET /api/v5/tasks/{id}` -> `{"success": true, "task": {..., "complete": bool}}`;
- `GET /api/v5/tasks?filter[performers][]=..&filter[status]=performing` -> `{"tasks": [...]}` (the filter's
  exact matching rules are not documented: only an exact `text` match in the answer counts, and anything but
  a list is "not found");
- `POST /api/v5/tasks/{id}/edit`, form field `task` = JSON `{"complete": true}` -> `{"success": true}`.

Rules (the same as amoCRM's, connectors/amocrm/calls.py): one open task per caller's number (the rows of
`retailcrm_missed_tasks`, connectors/missed_tasks.py); it is for the customer's responsible manager
(`telephony/manager`, ignoring the manager's status), else the delivery's candidates (the DID's default manager,
the call's owner, the configured fallback user); it is linked to the customer when RetailCRM knows one. A task
whose create answer was lost (the row stays pending) is looked for before it is created again.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from connectors.base import Delivery, SendOutcome, answer_id
from connectors.http import Exchange
from connectors.missed_tasks import PENDING, MissedTasks, Table
from connectors.retailcrm.settings import RetailCrmSettings

TABLE: Table = "retailcrm_missed_tasks"
DUE_FORMAT = "%Y-%m-%d %H:%M"
_NON_DIGITS = re.compile(r"\D")


class Caller(Protocol):
    """What a sender needs of the client: one exchange, read through RetailCRM's envelope."""

    settings: RetailCrmSettings

    async def request(
        self,
        name: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> tuple[Exchange, SendOutcome]: ...


class Failed(Exception):
    def __init__(self, outcome: SendOutcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


def digits(phone: str) -> str:
    return _NON_DIGITS.sub("", phone)


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Steps:
    """The exchanges of one delivery; the last one's outcome is the delivery's, with a note added."""

    def __init__(self, client: Caller) -> None:
        self.client = client
        self.last: SendOutcome | None = None

    async def get(self, name: str, path: str, params: Mapping[str, str] | None = None) -> tuple[Exchange, bool]:
        """GET; (exchange, found) where a 404 is "not found", any other failure raises."""
        exchange, result = await self.client.request(name, "GET", path, params=params)
        self.last = result
        if result.http_status == 404:
            return exchange, False
        if not result.ok:
            raise Failed(result)
        return exchange, True

    async def post(self, name: str, path: str, form: Mapping[str, str]) -> Exchange:
        exchange, result = await self.client.request(name, "POST", path, form=form)
        self.last = result
        if not result.ok:
            raise Failed(result)
        return exchange

    def done(self, note: str | None = None) -> SendOutcome:
        out = self.last or SendOutcome("success")
        out = SendOutcome(
            "success",
            http_status=out.http_status,
            request=out.request,
            response={**out.response, **({"note": note} if note else {})},
            duration_ms=out.duration_ms,
        )
        return out


async def responsible(steps: Steps, phone: str) -> tuple[str | None, int | None]:
    """(the customer's manager's user id, the customer's id) from `telephony/manager`, either may be None."""
    exchange, _ = await steps.get(
        "manager", "/telephony/manager", {"phone": phone, "details": "1", "ignoreStatus": "1"}
    )
    body = exchange.body if isinstance(exchange.body, dict) else {}
    manager, customer = body.get("manager"), body.get("customer")
    user = manager.get("id") if isinstance(manager, dict) else None
    cid = customer.get("id") if isinstance(customer, dict) else None
    return (
        str(user) if isinstance(user, int | str) and str(user).isdigit() else None,
        int(cid) if isinstance(cid, int | str) and str(cid).isdigit() else None,
    )


class TaskSender:
    def __init__(self, client: Caller, pool: Any, locks: dict[tuple[str, str], asyncio.Lock], d: Delivery) -> None:
        self.steps = Steps(client)
        self.settings = client.settings
        self.pool = pool
        self.locks = locks
        self.d = d
        self.p = d.payload

    def missed(self) -> MissedTasks:
        return MissedTasks(self.pool, TABLE, self.d.enterprise, digits(self.p["phone"]), self.p["call_id"])

    async def send(self) -> SendOutcome:
        try:
            async with self.locks.setdefault((self.d.enterprise, digits(self.p["phone"])), asyncio.Lock()):
                return await self._create(self.missed())
        except Failed as failed:
            return failed.outcome

    async def _create(self, missed: MissedTasks) -> SendOutcome:
        ours_pending = False
        for row in await missed.latest():
            waiting_for = missed.waits_for(row)
            if waiting_for is not None:
                error = f"waiting to learn whether call {waiting_for}'s call-back task for this number was made"
                return SendOutcome("transient", error=error, retry_after=5.0)
            if row["task_id"] == PENDING:
                ours_pending = ours_pending or row["call_id"] == missed.call_id
                continue
            if await self._open(int(row["task_id"])):
                return self.steps.done(f"task {row['task_id']} for this number is still open")
            await missed.forget(int(row["task_id"]))
        missed_at = self.p.get("missed_at")
        if missed_at and await missed.reached_since(datetime.fromisoformat(missed_at)):
            return self.steps.done("the customer was reached since (an answered call): no task")
        manager, customer = await responsible(self.steps, self.p["phone"])
        performer = manager or next(iter(self.p.get("users") or []), None)
        if performer is None:
            return self.steps.done("no manager to give the call-back task to (set task_default_user_id)")
        task: dict[str, Any] = {
            "text": self.p["text"],
            "performerId": int(performer),
            "datetime": self._due(),
            "phone": self.p["phone"],
        }
        if customer is not None:
            task["customer"] = {"id": customer}
        if ours_pending:  # an earlier try's answer was lost: RetailCRM may have made it
            found = await self._find(task)
            if found is not None:
                await missed.made(found)
                return self.steps.done(f"task {found} was made by an earlier try")
        form = {"task": to_json(task)}
        if self.settings.site:
            form["site"] = self.settings.site
        await missed.hold()
        try:
            exchange = await self.steps.post("task_create", "/tasks/create", form)
        except Failed as failed:
            if failed.outcome.http_status is not None:
                await missed.release()  # RetailCRM answered no: there is no task to wait for
            raise
        body = exchange.body if isinstance(exchange.body, dict) else {}
        made = answer_id(body.get("id"))
        if made is not None:
            await missed.made(made)
        else:
            await missed.release()
        return self.steps.done(f"task {made} for user {performer}")

    def _due(self) -> str:
        due = time.time() + int(self.p.get("due_minutes") or 15) * 60
        if self.p.get("missed_at"):
            due = datetime.fromisoformat(self.p["missed_at"]).timestamp() + int(self.p["due_minutes"]) * 60
        due = max(due, time.time() + 60)
        return datetime.fromtimestamp(due, self.settings.zone).strftime(DUE_FORMAT)

    async def _open(self, task_id: int) -> bool:
        exchange, found = await self.steps.get("task_get", f"/tasks/{task_id}")
        task = exchange.body.get("task") if found and isinstance(exchange.body, dict) else None
        return isinstance(task, dict) and task.get("complete") is False

    async def _find(self, task: dict[str, Any]) -> int | None:
        params = {"filter[performers][]": str(task["performerId"]), "filter[status]": "performing", "limit": "100"}
        exchange, _ = await self.steps.get("task_list", "/tasks", params)
        found = exchange.body.get("tasks") if isinstance(exchange.body, dict) else None
        for item in found if isinstance(found, list) else []:
            made = answer_id(item.get("id")) if isinstance(item, dict) and item.get("text") == task["text"] else None
            if made is not None:
                return made
        return None


class TaskDoneSender(TaskSender):
    """An answered call with the number: its open call-back tasks are completed (`complete: true`), once each;
    the number is marked reached, so that a task still to be made for an older missed call is not made."""

    async def send(self) -> SendOutcome:
        try:
            async with self.locks.setdefault((self.d.enterprise, digits(self.p["phone"])), asyncio.Lock()):
                return await self._complete(self.missed())
        except Failed as failed:
            return failed.outcome

    async def _complete(self, missed: MissedTasks) -> SendOutcome:
        if self.p.get("at"):
            await missed.reached(datetime.fromisoformat(self.p["at"]))
        done: list[int] = []
        for row in await missed.latest():
            waiting_for = missed.waits_for(row)
            if waiting_for is not None:
                error = f"waiting to learn whether call {waiting_for}'s call-back task for this number was made"
                return SendOutcome("transient", error=error, retry_after=5.0)
            if row["task_id"] == PENDING:
                continue
            task_id = int(row["task_id"])
            form = {"task": to_json({"complete": True})}
            _, result = await self.steps.client.request("task_done", "POST", f"/tasks/{task_id}/edit", form=form)
            self.steps.last = result
            if not result.ok and result.http_status != 404:  # 404: deleted in RetailCRM, nothing to complete
                raise Failed(result)
            await missed.forget(task_id)
            done.append(task_id)
        return self.steps.done(f"completed {done}" if done else "no open call-back task for this number")
