"""What RetailCRM needs to hear about a call: pure CallEvent -> [Delivery].

- `ringing` -> a pop-up (`telephony/call/event`, type in/out) for the ringing extension.
- `transferred` -> a pop-up for the transfer target, so the customer card follows the call.
- `answered` -> nothing: the event API has no "answered" type (only in/out/hangup).
- `ended` -> a `hangup` event closing every pop-up of the call, and one `telephony/calls/upload` item; a missed
  incoming call also one call-back `task` (`missed_call_tasks`; connectors/retailcrm/tasks.py decides at send
  time whether one is still open for the number and whom it is for); an answered call, in or out, a
  `task_done` that completes the number's open call-back task (the customer was reached). With
  `create_customers`, an incoming call's upload from an outside number is marked so that the sender makes the
  caller a customer first when RetailCRM does not know the number (connectors/retailcrm/customers.py).
- `internal` calls -> nothing: RetailCRM's telephony records calls with a customer (`phone` is the
  customer's number); an extension-to-extension call has none.
- no external number (anonymous caller) -> nothing: `phone` is required by both methods.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.tracking.event import CallEvent, CallResult
from connectors.base import Delivery
from connectors.retailcrm.settings import RetailCrmSettings
from connectors.texts import local, say

CRM = "retailcrm"
KIND_EVENT = "call_event"
KIND_UPLOAD = "calls_upload"
KIND_TASK = "task"
KIND_TASK_DONE = "task_done"
POPUP_TTL = 60.0
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
MIN_OUTSIDE_DIGITS = 7  # shorter: an extension or a service number, never a customer

# The same outcome is spelled differently by the two methods (crm-api.md §A4, §A5).
HANGUP_STATUS: dict[CallResult, str] = {
    "answered": "answered",
    "no_answer": "no answered",
    "busy": "busy",
    "failed": "failed",
    "cancelled": "cancel",
}
UPLOAD_RESULT: dict[CallResult, str] = {
    "answered": "answered",
    "no_answer": "no answer",
    "busy": "busy",
    "failed": "failed",
    # the upload enum has no "cancel": for the call history a caller who gave up is a missed call
    "cancelled": "no answer",
}


def plan(event: CallEvent, settings: RetailCrmSettings) -> list[Delivery]:
    if not settings.enabled or event.direction == "internal" or not event.phone:
        return []
    if event.event == "ringing":
        if event.extension and _popups_on(event, settings):
            return [_popup(event, settings, event.extension, f"event:ringing:{event.extension}")]
        return []
    if event.event == "transferred":
        target = event.to_extension
        if target and _popups_on(event, settings):
            key = f"event:transferred:{event.from_extension or ''}:{target}"
            return [_popup(event, settings, target, key)]
        return []
    if event.event == "ended":
        return _ended(event, settings)
    return []


def _popups_on(event: CallEvent, settings: RetailCrmSettings) -> bool:
    return settings.popup_in if event.direction == "in" else settings.popup_out


def _external_phone(event: CallEvent, settings: RetailCrmSettings) -> str | None:
    if event.direction == "in" and event.did:
        return event.did
    return settings.external_phone


def _common(event: CallEvent, settings: RetailCrmSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if settings.site:
        out["site"] = settings.site
    external = _external_phone(event, settings)
    if external:
        out["externalPhone"] = external
    return out


def _delivery(event: CallEvent, key: str, kind: str, payload: dict[str, Any], **kw: Any) -> Delivery:
    return Delivery(
        idempotency_key=f"{CRM}:{event.call_id}:{key}",
        enterprise=event.enterprise,
        crm=CRM,
        kind=kind,
        payload=payload,
        **kw,
    )


def _popup(event: CallEvent, settings: RetailCrmSettings, code: str, key: str) -> Delivery:
    wire = {
        "phone": event.phone,
        "type": event.direction,
        "codes": [code],
        "callExternalId": event.call_id,
        **_common(event, settings),
    }
    return _delivery(event, key, KIND_EVENT, {"event": wire}, expires_after=POPUP_TTL)


def _ended(event: CallEvent, settings: RetailCrmSettings) -> list[Delivery]:
    out: list[Delivery] = []
    rang = list(dict.fromkeys(event.extensions))
    if event.answered_by and event.answered_by not in rang:
        rang.append(event.answered_by)
    if settings.popup_hangup and rang and event.result is not None:
        wire = {
            "phone": event.phone,
            "type": "hangup",
            "codes": rang,
            "hangupStatus": HANGUP_STATUS[event.result],
            "callExternalId": event.call_id,
            **_common(event, settings),
        }
        out.append(_delivery(event, "event:hangup", KIND_EVENT, {"event": wire}, expires_after=POPUP_TTL))
    if settings.upload_history:
        out.append(_upload(event, settings, rang))
    if settings.missed_call_tasks and event.direction == "in" and event.answered_by is None:
        out.append(_task(event, settings))
    if settings.missed_call_tasks and event.answered_by:
        ended = event.ended_at or event.at
        payload = {"phone": event.phone, "call_id": event.call_id, "at": ended.isoformat() if ended else None}
        out.append(_delivery(event, "task_done", KIND_TASK_DONE, payload))
    return out


def _task(event: CallEvent, settings: RetailCrmSettings) -> Delivery:
    """The call-back task, with whom it may be for after the customer's own manager (asked at send time): the
    DID's default manager (routing rules), the call's owner (the manager smart redirect named, or the one phone
    it rang), the configured fallback user."""
    ended = event.ended_at or event.at
    if ended is not None and ended.tzinfo is None:
        ended = ended.replace(tzinfo=UTC)
    when = local(ended, settings.timezone)
    candidates = [
        settings.user_for_extension(event.default_extension) if event.default_extension else None,
        settings.user_for_extension(event.extension) if event.extension else None,
        settings.task_default_user_id,
    ]
    payload: dict[str, Any] = {
        "phone": event.phone,
        "call_id": event.call_id,
        "missed_at": ended.isoformat() if ended is not None else None,
        "due_minutes": settings.task_due_minutes,
        "text": say(settings.language, "task.missed", phone=event.phone, when=when),
        "users": [u for u in dict.fromkeys(candidates) if u is not None],
    }
    return _delivery(event, "task", KIND_TASK, payload)


def _upload(event: CallEvent, settings: RetailCrmSettings, rang: list[str]) -> Delivery:
    call: dict[str, Any] = {
        "type": event.direction,
        "phone": event.phone,
        "result": UPLOAD_RESULT[event.result] if event.result else "unknown",
        "duration": round(event.talk_seconds or 0),
        "durationWaiting": round(event.ring_seconds or 0),
        "externalId": event.call_id,
        **_common(event, settings),
    }
    when = event.started_at or event.at
    if when is not None:
        call["date"] = _local(when, settings)
    # whose call it is: the one who talked (a call his phone forwarded to his mobile included: `answered_by` is
    # his extension, `forwarded_to` the mobile, which the upload has no field for), else the call's owner (the
    # manager smart redirect named from the CRM, or the one phone it rang), else the DID's default manager; a
    # group call nobody answered is no member's
    manager = event.answered_by or event.extension or event.default_extension
    if manager:
        call["code"] = manager
        user_id = settings.user_for_extension(manager)
        if user_id is not None:
            call["userId"] = int(user_id)
    # `recording` is a path on the PBX `recording_pbx`; the sender turns it into a URL RetailCRM can fetch (recordUrl).
    payload: dict[str, Any] = {"call": call, "recording": event.recording, "recording_pbx": event.pbx}
    if settings.create_customers and _unknown_caller(event, settings):
        # the sender makes the caller a customer first when RetailCRM does not know the number (customers.py)
        payload["new_customer"] = {"order_method": settings.order_method if settings.create_orders else None}
    return _delivery(event, "upload", KIND_UPLOAD, payload, batch_key=f"{CRM}:{event.enterprise}:{KIND_UPLOAD}")


def _unknown_caller(event: CallEvent, settings: RetailCrmSettings) -> bool:
    """An incoming call from an outside number: not an extension or a short service number, not one of the
    enterprise's own numbers (the DID it came in on, the external phone): never an employee's phone."""
    if event.direction != "in" or not event.phone:
        return False
    number = "".join(c for c in event.phone if c.isdigit())
    own = {settings.external_phone or "", event.did or "", *settings.user_extensions.values()}
    own_digits = {"".join(c for c in n if c.isdigit()) for n in own} - {""}
    return len(number) >= MIN_OUTSIDE_DIGITS and number not in own_digits


def _local(when: datetime, settings: RetailCrmSettings) -> str:
    # RetailCRM dates carry no zone and are read in the account's time zone.
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(settings.zone).strftime(DATE_FORMAT)
