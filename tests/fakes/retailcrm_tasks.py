"""The fake RetailCRM's tasks, customers and orders (tasks/create, tasks, tasks/{id}, tasks/{id}/edit,
customers/create, orders/create): the state and the routes, mounted by tests/fakes/retailcrm.py."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from tests.fakes import retailcrm_rules as rules

Invalid = Callable[[dict[str, str]], web.Response]
Field = Callable[[web.Request, str], Awaitable[tuple[Any, web.Response | None]]]


class Envelope(Protocol):
    def __call__(self, status: int, msg: str, errors: dict[str, str] | None = None) -> web.Response: ...


class Records:
    def __init__(self, users: Callable[[], set[str]], field: Field, invalid: Invalid, envelope: Envelope) -> None:
        self.users = users
        self.field = field
        self.invalid = invalid
        self.envelope = envelope
        self.tasks: dict[int, dict[str, Any]] = {}
        self.customers: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.order_methods = {"phone", "shopping-cart"}
        self.known_customers: set[str] = {"1"}  # the customer the fake's telephony/manager makes up
        self.string_ids = False  # answer made ids as strings (tasks/create, customers/create: not in crm-api.md)

    def add(self, app: web.Application) -> None:
        app.router.add_get("/api/v5/tasks", self._list)
        app.router.add_post("/api/v5/tasks/create", self._create)
        app.router.add_get("/api/v5/tasks/{id}", self._get)
        app.router.add_post("/api/v5/tasks/{id}/edit", self._edit)
        app.router.add_post("/api/v5/customers/create", self._customer)
        app.router.add_post("/api/v5/orders/create", self._order)

    def open_tasks(self) -> list[dict[str, Any]]:
        return [t for t in self.tasks.values() if not t["complete"]]

    def customer_ids(self) -> set[str]:
        return self.known_customers | {str(i) for i in self.customers}

    def customer_by_phone(self, digits: str) -> dict[str, Any] | None:
        for customer in self.customers.values():
            for phone in customer.get("phones") or []:
                if rules.phone_digits(str(phone.get("number", ""))) == digits:
                    return customer
        return None

    async def _create(self, request: web.Request) -> web.Response:
        task, error = await self.field(request, "task")
        if error is not None:
            return error
        errors = rules.check_task(task, self.users(), self.customer_ids(), creating=True)
        if errors:
            return self.invalid(errors)
        tid = len(self.tasks) + 1
        self.tasks[tid] = {
            **task,
            "id": tid,
            "performer": int(task["performerId"]),
            "performerType": "user",
            "complete": bool(task.get("complete", False)),
            "createdAt": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        }
        return web.json_response({"success": True, "id": self._spelt(tid)})

    def _task(self, request: web.Request) -> dict[str, Any] | None:
        raw = request.match_info["id"]
        return self.tasks.get(int(raw)) if raw.isdigit() else None

    async def _get(self, request: web.Request) -> web.Response:
        task = self._task(request)
        if task is None:
            return self.envelope(404, "Not found")
        shown = {k: v for k, v in task.items() if k != "performerId"}
        return web.json_response({"success": True, "task": shown})

    async def _edit(self, request: web.Request) -> web.Response:
        task = self._task(request)
        if task is None:
            return self.envelope(404, "Not found")
        change, error = await self.field(request, "task")
        if error is not None:
            return error
        errors = rules.check_task(change, self.users(), self.customer_ids(), creating=False)
        if errors:
            return self.invalid(errors)
        if change.get("complete") and not task["complete"]:
            task["completedAt"] = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        task.update(change)
        return web.json_response({"success": True})

    async def _list(self, request: web.Request) -> web.Response:
        q = request.query
        limit, page = q.get("limit", "20"), q.get("page", "1")
        # §A1.4: `limit` is one of 20, 50, 100, 250 and `page` 1-based, as on every paged list
        if not (limit.isdigit() and int(limit) in rules.PAGE_LIMITS) or not (page.isdigit() and int(page) >= 1):
            return self.envelope(400, "Validation error", {"limit": "This value is not a valid choice."})
        performers = set(q.getall("filter[performers][]", []))
        status = q.get("filter[status]")
        if status is not None and status not in rules.TASK_STATUSES:
            return self.invalid({"status": "This value is not a valid choice."})
        text = q.get("filter[text]")
        found = [
            t
            for t in self.tasks.values()
            if (not performers or str(t["performer"]) in performers)
            and (status is None or t["complete"] == (status == "completed"))
            and (text is None or text in t["text"])
        ]
        return web.json_response(
            {
                "success": True,
                "tasks": found[(int(page) - 1) * int(limit) : int(page) * int(limit)],
                "pagination": {
                    "limit": int(limit),
                    "totalCount": len(found),
                    "currentPage": int(page),
                    "totalPageCount": max(1, -(-len(found) // int(limit))),
                },
            }
        )

    async def _customer(self, request: web.Request) -> web.Response:
        customer, error = await self.field(request, "customer")
        if error is not None:
            return error
        errors = rules.check_customer(customer)
        if errors:
            return self.invalid(errors)
        cid = 1000 + len(self.customers) + 1
        self.customers[cid] = {**customer, "id": cid}
        return web.json_response({"success": True, "id": self._spelt(cid)}, status=201)

    def _spelt(self, made: int) -> int | str:
        return str(made) if self.string_ids else made

    async def _order(self, request: web.Request) -> web.Response:
        order, error = await self.field(request, "order")
        if error is not None:
            return error
        errors = rules.check_order(order, self.customer_ids(), self.order_methods)
        if errors:
            return self.invalid(errors)
        oid = len(self.orders) + 1
        self.orders[oid] = {**order, "id": oid}
        return web.json_response(
            {"success": True, "id": oid, "order": json.loads(json.dumps(self.orders[oid]))}, status=201
        )
