"""The `ended` event: result, durations and who the call belongs to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.tracking.event import CallEvent, CallResult
from agent.tracking.state import Call, Env, seconds

_FAILED = frozenset({"CONGESTION", "CHANUNAVAIL", "DONTCALL", "TORTURE", "INVALIDARGS"})


def result_of(call: Call) -> CallResult:
    """answered if a person answered; else what the last dial attempt ended with.

    A queue member's NOANSWER or a ring-group loser's CANCEL never decides alone: a call
    someone answered is `answered`; `cancelled` means the caller gave up while it rang.
    """
    if call.answered_by is not None:
        return "answered"
    status = call.last_status or call.origin_status
    if status == "BUSY":
        return "busy"
    if status == "NOANSWER":
        return "no_answer"
    if status in _FAILED:
        return "failed"
    return "cancelled"


def fallback_direction(env: Env, call: Call) -> None:
    """A call that never dialled anyone: judge it by its first channel."""
    first = call.first
    if call.origin:
        # An Originate rang a phone that never got to dial: click-to-call nobody took.
        call.direction = "out"
        call.caller_ext = next(iter(call.origin.values()))
        call.add_extension(call.caller_ext)
        return
    if first is None:
        call.direction = "in"
        return
    ext = env.identity(first.name, first.cid, first.context)
    if ext is None:
        call.direction = "in"
        call.phone = env.number(first.cid)
        call.did = first.exten if first.exten and first.exten != "s" else None
    else:
        call.direction = "internal"
        call.phone = ext


def owner(call: Call) -> str | None:
    """Whose call it is: who answered last; else the manager smart redirect named from a CRM; else the one
    phone it rang. A group call (ring group, hunt list, queue) nobody answered belongs to none of the members
    that rang: the CRMs give it to the DID's `default_extension`, else leave it unassigned."""
    if call.answered_by is not None:
        return call.answered_by
    if call.responsible is not None:
        return call.responsible
    return call.extensions[0] if len(call.extensions) == 1 else None


def ended(
    env: Env, call: Call, at: datetime | None, ended_at: datetime | None, extra: dict[str, Any] | None = None
) -> CallEvent:
    if call.direction is None:
        fallback_direction(env, call)
    if call.current is not None:
        call.current.close(ended_at)
    result = result_of(call)
    extension = call.caller_ext if call.direction == "out" else owner(call)
    start = call.started_at
    if call.first_answer_at is not None:
        ring = seconds(start, call.first_answer_at)
    elif call.answered_by is None:
        ring = seconds(start, ended_at)
    else:
        ring = None
    talk: float | None = 0.0 if ended_at is not None or call.legs else None
    legs: list[dict[str, Any]] = []
    for leg in call.legs:
        leg_talk = seconds(leg.start, leg.end)
        legs.append({"extension": leg.extension, "talk_seconds": leg_talk})
        talk = None if talk is None or leg_talk is None else round(talk + leg_talk, 3)
    more: dict[str, Any] = dict(extra or {})
    if legs:
        more["legs"] = legs
    if call.transfers:
        more["transfers"] = call.transfers
    dialled = call.first.exten if call.first is not None else ""
    if call.direction == "internal" and dialled not in ("", "s") and dialled not in call.extensions:
        more["dialled"] = dialled  # the group or queue number an extension called
    return call.event(
        env,
        "ended",
        extension,
        at,
        extensions=tuple(call.extensions),
        answered_by=call.answered_by,
        result=result,
        ring_seconds=ring,
        talk_seconds=talk,
        started_at=start,
        ended_at=ended_at,
        recording=call.recording,
        forwarded_to=call.legs[-1].forwarded_to if call.legs else None,
        extra=more,
    )
