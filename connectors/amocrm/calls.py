"""Sending one `call` delivery: record the call in amoCRM whatever the caller, then the call-back task.

Steps (each one acknowledged by amoCRM is saved in `amocrm_call_steps`, so a retry skips it; a step that
creates something is marked there before it is sent, so that a retry after a lost answer first asks amoCRM
whether it was made: connectors/amocrm/lost_answers.py):
1. look the caller up (contacts by phone);
2. `recorded`: known contact -> `POST /api/v4/calls`; unknown -> per `unknown_caller`:
   `unsorted` -> `POST /api/v4/leads/unsorted/sip` (with the call in its metadata),
   `contact_and_lead` -> `POST /api/v4/leads/complex` (saved as `created`), then `POST /api/v4/calls`,
   `none` -> nothing (said so in the outcome);
3. `task` (missed incoming calls): none while a call-back task made for this number is still open;
   else `POST /api/v4/tasks` for the contact's responsible manager -> the DID's default manager -> the call's owner
   (agent.tracking.end.owner; a group call nobody answered has none) -> `task_default_user_id`.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from connectors.amocrm.contacts import Contact, digits, find_contact, phone_field
from connectors.amocrm.lost_answers import CLOCK_SLACK_S, already_exists, call_note_exists, open_task_like
from connectors.amocrm.session import Session, StepFailed
from connectors.base import Delivery, RecordUrl, SendOutcome, answer_id, recording_of
from connectors.missed_tasks import PENDING, MissedTasks

TASK_TYPE_CALL = 1


class CallSender:
    def __init__(
        self,
        session: Session,
        delivery: Delivery,
        record_url: RecordUrl | None,
        phone_locks: dict[tuple[str, str], asyncio.Lock],
    ) -> None:
        self.s = session
        self.d = delivery
        self.p = delivery.payload
        self.record_url = record_url
        self.phone_locks = phone_locks
        self.steps: dict[str, Any] = {}

    @property
    def pool(self) -> Any:
        return self.s.tokens.pool

    async def send(self) -> SendOutcome:
        try:
            self.steps = await self._load()
            contact: Contact | None = None
            if "recorded" not in self.steps:
                contact = await find_contact(self.s, self.p["phone"])
                await self._record(contact)
            if "task" in self.p and "task" not in self.steps:
                await self._task(contact)
        except StepFailed as failed:
            out = failed.outcome
            if self.s.exchanges:
                out = self.s.outcome(
                    out.status, out.error, self.s.exchanges[-1], retry_after=out.retry_after, steps=self.steps
                )
            return out
        last = self.s.exchanges[-1] if self.s.exchanges else None
        return self.s.outcome("success", None, last, steps=self.steps)

    # -- the call --------------------------------------------------------------------------------

    def _call_body(self) -> dict[str, Any]:
        call = dict(self.p["call"])
        call["source"] = self.s.settings.source
        recording = recording_of(self.p)
        if recording is not None and self.record_url is not None:
            path, pbx = recording
            url = self.record_url(path, fmt="mp3", pbx=pbx)  # amoCRM's player takes MP3 only
            if url:
                call["link"] = url
        call["request_id"] = "0"
        return call

    async def _record(self, contact: Contact | None) -> None:
        if contact is not None:
            await self._post_call()
            await self._save("recorded", {"via": "calls", "contact_id": contact.id})
            return
        policy = self.s.settings.unknown_caller
        if policy == "none":
            await self._save("recorded", {"via": "none", "note": "unknown number; unknown_caller is none"})
        elif policy == "unsorted":
            await self._unsorted()
        else:
            if "created" not in self.steps:
                await self._complex()
            await self._post_call()
            await self._save("recorded", {"via": "contact_and_lead", **self.steps["created"]})

    async def _post_call(self) -> None:
        body = self._call_body()
        posted = self.steps.get("posting_call")
        if posted is not None and await call_note_exists(self.s, body, since=int(posted["at"]) - CLOCK_SLACK_S):
            return  # an earlier try's answer was lost, but amoCRM has the call

        async def mark() -> None:  # as it goes out: should its answer be lost, the next try checks first
            await self._save("posting_call", {"at": int(time.time())})

        try:
            exchange = await self.s.checked("POST", "/api/v4/calls", body=[body], before_send=mark)
        except StepFailed:
            if "posting_call" in self.steps and self.s.exchanges and self.s.exchanges[-1].http_status is not None:
                await self._forget("posting_call")  # amoCRM answered no: nothing to find next time
            raise
        calls = ((exchange.body or {}).get("_embedded") or {}).get("calls") if isinstance(exchange.body, dict) else None
        if not calls:  # amoCRM drops a call whose number matches no card (§B5): it must not vanish quietly
            raise StepFailed(
                self.s.outcome(
                    "transient",
                    "amoCRM did not attach the call to any card (the contact may have just been deleted or merged)",
                    exchange,
                    retry_after=30.0,
                )
            )

    async def _unsorted(self) -> None:
        settings = self.s.settings
        call = self._call_body()
        metadata: dict[str, Any] = {
            "uniq": call["uniq"],
            "duration": call["duration"],
            "service_code": settings.source,
            "link": call.get("link", ""),
            "phone": self.p.get("did") or "",
            "from": self.p["phone"],
            "called_at": call.get("created_at") or int(time.time()),
            "is_call_event_needed": True,
        }
        if "responsible_user_id" in call:
            metadata["call_responsible"] = call["responsible_user_id"]
        item: dict[str, Any] = {
            "source_uid": f"{settings.source}:{call['uniq']}",
            "source_name": settings.source,
            "created_at": metadata["called_at"],
            "request_id": "0",
            "metadata": metadata,
            "_embedded": {
                "contacts": [{"name": self.p["phone"], "custom_fields_values": phone_field(self.p["phone"])}],
                "leads": [self._lead()],
            },
        }
        if settings.pipeline_id is not None:
            item["pipeline_id"] = settings.pipeline_id
        try:
            exchange = await self.s.checked("POST", "/api/v4/leads/unsorted/sip", body=[item])
        except StepFailed:
            if not self.s.exchanges or not already_exists(self.s.exchanges[-1]):
                raise
            # amoCRM keeps one unsorted item per `uniq`: an earlier try made it and its answer was lost
            await self._save("recorded", {"via": "unsorted", "note": "amoCRM already had it (an earlier answer lost)"})
            return
        unsorted = _embedded(exchange, "unsorted")
        lead_id = _first_id(unsorted, "leads")
        contact_id = _first_id(unsorted, "contacts")
        uid = unsorted[0].get("uid") if unsorted else None
        await self._save("recorded", {"via": "unsorted", "uid": uid, "lead_id": lead_id, "contact_id": contact_id})

    def _lead(self) -> dict[str, Any]:
        settings = self.s.settings
        inbound = self.p["call"]["direction"] == "inbound"
        fallback = f"Call from {self.p['phone']}" if inbound else f"Call to {self.p['phone']}"  # planned before names
        lead: dict[str, Any] = {"name": self.p.get("lead_name") or fallback}
        if settings.lead_tags:
            lead["_embedded"] = {"tags": [{"name": t} for t in settings.lead_tags]}
        user = self.p["call"].get("responsible_user_id")
        if user is not None:
            lead["responsible_user_id"] = user
        return lead

    async def _complex(self) -> None:
        if "creating" in self.steps:  # an earlier try may have made them: its answer was lost
            made = await find_contact(self.s, self.p["phone"])
            if made is not None:
                lead_id = made.lead_ids[0] if made.lead_ids else None
                await self._save(
                    "created", {"lead_id": lead_id, "contact_id": made.id, "note": "found after a lost answer"}
                )
                return
        settings = self.s.settings
        lead = self._lead()
        if settings.pipeline_id is not None:
            lead["pipeline_id"] = settings.pipeline_id
        if settings.status_id is not None:
            lead["status_id"] = settings.status_id
        contact: dict[str, Any] = {"name": self.p["phone"], "custom_fields_values": phone_field(self.p["phone"])}
        if "responsible_user_id" in lead:
            contact["responsible_user_id"] = lead["responsible_user_id"]
        lead["_embedded"] = {**lead.get("_embedded", {}), "contacts": [contact]}
        lead["request_id"] = "0"
        exchange = await self.s.checked(
            "POST",
            "/api/v4/leads/complex",
            body=[lead],
            before_send=lambda: self._save("creating", {"at": int(time.time())}),
        )
        body = exchange.body
        first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
        await self._save("created", {"lead_id": first.get("id"), "contact_id": first.get("contact_id")})

    # -- the call-back task ----------------------------------------------------------------------

    async def _task(self, contact: Contact | None) -> None:
        phone = digits(self.p["phone"])
        lock = self.phone_locks.setdefault((self.d.enterprise, phone), asyncio.Lock())
        async with lock:  # two missed calls from one number at once still make one task
            missed = MissedTasks(self.pool, "amocrm_missed_tasks", self.d.enterprise, phone, self.p["call"]["uniq"])
            open_id = await self._open_task(missed)
            if open_id is not None:
                await self._save("task", {"skipped": f"task {open_id} for this number is still open"})
                return
            ended = self.p.get("ended_at")
            if isinstance(ended, int) and await missed.reached_since(datetime.fromtimestamp(ended, UTC)):
                await self._save("task", {"skipped": "the customer was reached since (an answered call)"})
                return
            if contact is None and self.steps.get("recorded", {}).get("via") == "calls":
                contact = await find_contact(self.s, self.p["phone"])
            entity_type, entity_id = self._task_entity(contact)
            task: dict[str, Any] = {
                "text": self.p["task"]["text"],
                "task_type_id": TASK_TYPE_CALL,
                "request_id": "0",
                "complete_till": max(int(self.p["task"]["complete_till"]), int(time.time()) + 60),
            }
            if entity_id is not None:
                task["entity_type"], task["entity_id"] = entity_type, entity_id
            assignee = self._assignee(contact)
            if assignee is not None:
                task["responsible_user_id"] = assignee
            task_id = await self._post_task(task, missed)
            if task_id is not None:
                await missed.made(task_id)
            await self._save(
                "task",
                {
                    "id": task_id,
                    "responsible_user_id": assignee,
                    "entity": f"{entity_type}:{entity_id}" if entity_id else None,
                },
            )

    async def _post_task(self, task: dict[str, Any], missed: MissedTasks) -> int | None:
        """POST the task, unless an earlier try's answer was lost after amoCRM made it: then its id."""
        if "posting_task" in self.steps:
            made = await open_task_like(self.s, task)
            if made is not None:
                return made

        async def mark() -> None:
            await self._save("posting_task", {"at": int(time.time())})
            await missed.hold()

        try:
            exchange = await self.s.checked("POST", "/api/v4/tasks", body=[task], before_send=mark)
        except StepFailed:
            if self.s.exchanges and self.s.exchanges[-1].http_status is not None:
                await missed.release()  # amoCRM answered no: no task to wait for
            raise
        tasks = _embedded(exchange, "tasks")
        made = answer_id(tasks[0].get("id")) if tasks else None
        if made is None:  # no id to remember: nothing for the number's next task to wait for
            await missed.release()
        return made

    async def _open_task(self, missed: MissedTasks) -> int | None:
        for row in await missed.latest():
            waiting_for = missed.waits_for(row)
            if waiting_for is not None:
                error = f"waiting to learn whether call {waiting_for}'s call-back task for this number was made"
                raise StepFailed(self.s.outcome("transient", error, None, retry_after=5.0))
            if row["task_id"] == PENDING:
                continue  # our own earlier try (the posting_task step checks it) or an abandoned one
            exchange = await self.s.checked("GET", f"/api/v4/tasks/{row['task_id']}")
            body = exchange.body if isinstance(exchange.body, dict) else None
            if body is not None and body.get("is_completed") is False:
                return int(row["task_id"])
            await missed.forget(int(row["task_id"]))  # done or deleted: forget it
        return None

    def _task_entity(self, contact: Contact | None) -> tuple[str, int | None]:
        recorded = self.steps.get("recorded", {})
        if recorded.get("lead_id"):
            return "leads", int(recorded["lead_id"])
        if contact is not None:
            return "contacts", contact.id
        if recorded.get("contact_id"):
            return "contacts", int(recorded["contact_id"])
        return "contacts", None

    def _assignee(self, contact: Contact | None) -> int | None:
        settings = self.s.settings
        if contact is not None and contact.responsible_user_id is not None:
            return contact.responsible_user_id
        if isinstance(self.p.get("default_user"), int):  # the DID's default manager (routing rules)
            return int(self.p["default_user"])
        owner = settings.user_for_extension(self.p.get("owner"))
        if owner is not None:  # the call's owner: the manager smart redirect named, or the one phone it rang
            return owner
        return settings.task_default_user_id

    # -- progress --------------------------------------------------------------------------------

    async def _load(self) -> dict[str, Any]:
        raw = await self.pool.fetchval(
            "SELECT steps FROM amocrm_call_steps WHERE idempotency_key = $1", self.d.idempotency_key
        )
        if isinstance(raw, str):
            raw = json.loads(raw)
        return dict(raw) if isinstance(raw, dict) else {}

    async def _forget(self, step: str) -> None:
        self.steps.pop(step, None)
        await self._store()

    async def _save(self, step: str, value: dict[str, Any]) -> None:
        self.steps[step] = value
        await self._store()

    async def _store(self) -> None:
        await self.pool.execute(
            "INSERT INTO amocrm_call_steps (idempotency_key, enterprise_number, steps) VALUES ($1, $2, $3)"
            " ON CONFLICT (idempotency_key) DO UPDATE SET steps = EXCLUDED.steps, updated_at = now()",
            self.d.idempotency_key,
            self.d.enterprise,
            self.steps,
        )


def _embedded(exchange: Any, name: str) -> list[dict[str, Any]]:
    body = exchange.body
    items = ((body.get("_embedded") or {}).get(name)) if isinstance(body, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _first_id(items: list[dict[str, Any]], name: str) -> int | None:
    for item in items:
        for entity in (item.get("_embedded") or {}).get(name) or []:
            made = answer_id(entity.get("id")) if isinstance(entity, dict) else None
            if made is not None:
                return made
    return None
