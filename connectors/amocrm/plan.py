"""What amoCRM needs to hear about a call: pure CallEvent -> [Delivery].

- `ended`, with an external number, incoming or outgoing -> one `call` delivery
  (`amocrm:<call_id>:call`). Its send looks the caller up first: a known contact gets the call through
  `POST /api/v4/calls`; an unknown number (which the calls API silently drops, crm-api.md §B5) goes to
  Unsorted, or becomes a contact and a lead, or is skipped, per `unknown_caller`. A missed incoming call
  (nobody answered, the caller gave up included) also carries one call-back task; a queue or ring group that
  rang several phones still ends in one `ended` event, so one delivery, one task.
- incoming `ringing` of a mapped manager's phone -> a live call pop-up for that manager (`POST /api/v2/events`,
  crm-api.md §B6; amoCRM finds the card itself), which expires after 60 s: it only matters while it rings.
- `ended` and answered (in or out), with `missed_call_tasks` -> a `task_done` delivery
  (`amocrm:<call_id>:task_done`) completing the number's open call-back task: the customer was reached.
- `answered`, `transferred` -> nothing.
- `internal` calls and calls without an external number -> nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.tracking.event import CallEvent, CallResult
from connectors.amocrm.settings import AmoCrmSettings
from connectors.base import Delivery
from connectors.texts import local, say

CRM = "amocrm"
KIND_CALL = "call"
KIND_EVENT = "event"
KIND_TASK_DONE = "task_done"
POPUP_TTL = 60.0

# call_status (crm-api.md §B5): 3 not available, 4 had a conversation, 6 no connection, 7 line busy
CALL_STATUS: dict[CallResult, int] = {"answered": 4, "no_answer": 6, "cancelled": 6, "busy": 7, "failed": 3}


def plan(event: CallEvent, settings: AmoCrmSettings) -> list[Delivery]:
    if not settings.enabled or event.direction == "internal" or not event.phone:
        return []
    if event.event == "ringing":  # incoming only: on an outgoing call the manager knows whom they dial
        return _popup(event, settings) if event.direction == "in" else []
    if event.event != "ended":
        return []
    out = [_call(event, settings)]
    if settings.missed_call_tasks and event.answered_by:
        out.append(_task_done(event, settings))
    return out


def _task_done(event: CallEvent, settings: AmoCrmSettings) -> Delivery:
    ended = event.ended_at or event.at
    way = "in" if event.direction == "in" else "out"
    when = local(ended, settings.timezone)
    payload = {
        "phone": event.phone,
        "call_id": event.call_id,
        "at": _unix(ended),
        "result": say(settings.language, f"task.reached.{way}", phone=event.phone, when=when, who=event.answered_by),
    }
    return Delivery(f"{CRM}:{event.call_id}:task_done", event.enterprise, CRM, KIND_TASK_DONE, payload)


def _popup(event: CallEvent, settings: AmoCrmSettings) -> list[Delivery]:
    user = settings.user_for_extension(event.extension)
    if user is None or event.phone is None:  # nobody to show it to (an unmapped phone would alert everyone)
        return []
    payload = {"add": [{"type": "phone_call", "phone_number": event.phone, "users": [user]}]}
    return [
        Delivery(
            f"{CRM}:{event.call_id}:event:ringing:{event.extension}",
            event.enterprise,
            CRM,
            KIND_EVENT,
            payload,
            expires_after=POPUP_TTL,
        )
    ]


def is_missed(event: CallEvent) -> bool:
    return event.direction == "in" and event.answered_by is None


def _unix(when: datetime | None) -> int | None:
    return int(when.timestamp()) if when is not None else None


def _who(event: CallEvent, settings: AmoCrmSettings) -> str:
    """` (150)`, or ` (150 on +375296660150)` when 150's phone forwarded the call to that outside number (the
    manager's mobile: the call stays his, and the customer's card gets it, never a card for the mobile)."""
    if not event.answered_by:
        return ""
    if event.forwarded_to:
        return f" ({say(settings.language, 'who.forwarded', who=event.answered_by, number=event.forwarded_to)})"
    return f" ({event.answered_by})"


def _call(event: CallEvent, settings: AmoCrmSettings) -> Delivery:
    result: CallResult = event.result or ("answered" if event.answered_by else "no_answer")
    rang = list(dict.fromkeys(event.extensions))
    call: dict[str, Any] = {
        "direction": "inbound" if event.direction == "in" else "outbound",
        "uniq": event.call_id,
        "duration": round(event.talk_seconds or 0),
        "source": settings.source,
        "phone": event.phone,
        "call_status": CALL_STATUS[result],
        "call_result": say(settings.language, f"result.{result}") + _who(event, settings),
    }
    started = _unix(event.started_at or event.at)
    if started is not None:
        call["created_at"] = started
    user = settings.user_for_extension(event.answered_by)
    if user is not None:
        call["responsible_user_id"] = user
        call["created_by"] = user
    payload: dict[str, Any] = {
        "call": call,
        "phone": event.phone,
        "did": event.did,
        "answered_by": event.answered_by,
        "extensions": rang,
        "owner": event.extension,  # agent.tracking.end.owner: never merely the last member of a group that rang
        "recording": event.recording,  # a path on the PBX below; the sender turns it into a URL (`link`)
        "recording_pbx": event.pbx,
        "ended_at": _unix(event.ended_at or event.at),
        "lead_name": say(settings.language, "lead.in" if event.direction == "in" else "lead.out", phone=event.phone),
    }
    if is_missed(event) and settings.missed_call_tasks:
        ended = event.ended_at or event.at
        due = (_unix(ended) or 0) + settings.task_due_minutes * 60
        when = local(ended, settings.timezone)
        payload["task"] = {
            "complete_till": due,
            "text": say(settings.language, "task.missed", phone=event.phone, when=when),
        }
    default_user = settings.user_for_extension(event.default_extension)
    if default_user is not None and user is None:  # routing rules: the DID's default manager owns it
        payload["default_user"] = default_user
        call["responsible_user_id"] = default_user
    return Delivery(
        idempotency_key=f"{CRM}:{event.call_id}:call",
        enterprise=event.enterprise,
        crm=CRM,
        kind=KIND_CALL,
        payload=payload,
    )
