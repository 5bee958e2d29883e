"""Dial, queue and pickup events: who rang, who answered, how a dial attempt ended.

Only a `DialEnd ANSWER` to a phone (or a queue `AgentConnect`, a pickup, a transfer) makes a
person answer; a trunk channel going `Up` (an IVR `Answer()`) or an `ANSWERED` Cdr does not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from agent.tracking.event import CallEvent
from agent.tracking.state import Call, Env, Leg

_NUMBER = re.compile(r"^\+?\d[\d*#]*$")


def _dial_target(dial_string: str) -> str:
    """The user part of a Dial's destination: `+375…` from `+375…@provider`, `PJSIP/150`,
    `provider/sip:+375…@host` (chan_pjsip's endpoint with a URI) or `Local/+375…@from-internal/n`."""
    target = dial_string.split("@", 1)[0].rsplit("/", 1)[-1]
    scheme, colon, rest = target.partition(":")
    return rest if colon and scheme.lower() in _URI_SCHEMES else target


_URI_SCHEMES = frozenset({"sip", "sips", "tel"})


def dialled_number(msg: Mapping[str, str]) -> str | None:
    """The number an outgoing Dial went to: `DialString` without tech and trunk, else `Exten`."""
    dial = _dial_target(msg.get("DialString", ""))
    if _NUMBER.match(dial):
        return dial
    for key in ("Exten", "DestCallerIDNum"):
        value = msg.get(key, "")
        if _NUMBER.match(value):
            return value
    return None


def decide(env: Env, call: Call, msg: Mapping[str, str], dest_ext: str | None) -> None:
    """Fix direction, phone and DID from the call's first real Dial (one with a caller)."""
    uid = msg.get("Uniqueid", "")
    chan = call.channels.get(uid)
    context = chan.context if chan is not None else msg.get("Context")
    caller = env.identity(msg.get("Channel", ""), msg.get("CallerIDNum"), context)
    call.caller_uid = uid
    call.caller_ext = caller
    if caller is None:
        call.direction = "in"
        call.phone = env.number(msg.get("CallerIDNum"))
        exten = chan.exten if chan is not None else msg.get("Exten", "")
        call.did = exten if exten and exten != "s" else None
    elif dest_ext is None:
        call.direction = "out"
        call.phone = env.number(dialled_number(msg))
        call.add_extension(caller)
    else:
        call.direction = "internal"
        call.phone = caller


def dial_begin(env: Env, call: Call, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    dest_uid = msg.get("DestUniqueid", "")
    dest_ext = env.rules.dialled_extension(msg.get("DestChannel"), msg.get("DestContext"))
    if "Channel" not in msg:
        # The Originate's own leg (click-to-call rings the manager first): not a callee.
        if dest_ext is not None:
            call.origin[dest_uid] = dest_ext
        return []
    if call.direction is None:
        decide(env, call, msg, dest_ext)
    uid = msg.get("Uniqueid", "")
    if uid != call.caller_uid and call.current is not None and not call.current.closed:
        # Someone holds the caller and dials from another channel: an attended-transfer consult.
        call.consult[uid] = dest_ext
        call.consult[dest_uid] = dest_ext
        if dest_ext is None:
            return []
        call.add_extension(dest_ext)
        return [call.event(env, "ringing", dest_ext, at)]
    forward, call.forward = call.forward, None
    # A leg that already rings this party dials on (a queue or group member `Local/151@from-queue` whose `;2`
    # half dials `PJSIP/151`, an outbound route's `Local/<number>@from-internal` dialling the trunk): the same
    # ring, not a second one.
    ringing = dest_ext in call.dials.values() and _still_ringing(call, dest_ext)
    if dest_ext is None:
        call.dials[dest_uid] = None
        forwarded = _forwarded(env, call, msg, forward)
        if forwarded is not None:
            call.forwards[dest_uid] = forwarded
            return []
        if call.direction == "out" and call.caller_ext is not None and not ringing:
            return [call.event(env, "ringing", call.caller_ext, at)]
        return []
    call.dials[dest_uid] = dest_ext
    call.add_extension(dest_ext)
    call.last_ext = dest_ext
    if ringing:
        return []
    return [call.event(env, "ringing", dest_ext, at)]


def _still_ringing(call: Call, ext: str | None) -> bool:
    return any(e == ext and uid not in call.dials_done for uid, e in call.dials.items())


def dial_end(env: Env, call: Call, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    dest_uid = msg.get("DestUniqueid", "")
    status = msg.get("DialStatus", "")
    if "Channel" not in msg:
        if dest_uid in call.origin:
            call.origin_status = status
        return []
    if dest_uid not in call.dials:
        if status == "ANSWER" and msg.get("Uniqueid") == call.caller_uid:
            return _answered_in_place(env, call, msg, at)
        return []  # a consultation or an unknown dial
    if dest_uid in call.dials_done:
        return []  # the CANCEL that follows a queue member's NOANSWER
    call.dials_done.add(dest_uid)
    if status != "ANSWER":
        if msg.get("Uniqueid") == call.caller_uid or call.last_status is None:
            # How the caller's own Dial ended decides; a nested leg's (the Local `;2` half of a queue or
            # group member, cancelled after the member's ring time ran out) only when nothing else is known.
            call.last_status = status
        ext = call.dials[dest_uid]
        if ext is not None and msg.get("Forward"):
            # The phone forwarded the call (SIP 302): Dial's next leg, to the number it gave, is the phone's.
            call.forward = (ext, env.number(msg["Forward"]))
        return []
    forwarded = call.forwards.get(dest_uid)
    if forwarded is not None:
        return answer(env, call, forwarded[0], dest_uid, at, forwarded_to=forwarded[1])
    ext = call.pickups.get(dest_uid) or call.dials[dest_uid]
    if ext is not None:
        return answer(env, call, ext, dest_uid, at)
    if call.direction == "out" and call.caller_ext is not None:
        return answer(env, call, call.caller_ext, call.caller_uid, at)
    return []


def agent_connect(env: Env, call: Call, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    dest_uid = msg.get("DestUniqueid", "")
    ext = call.pickups.get(dest_uid) or call.dials.get(dest_uid)
    if ext is None:
        ext = env.rules.dialled_extension(msg.get("DestChannel"), msg.get("DestContext"))
    if ext is None or dest_uid in call.dials_done:
        return []
    call.dials_done.add(dest_uid)
    return answer(env, call, ext, dest_uid, at)


def answer(
    env: Env, call: Call, ext: str, channel: str | None, at: datetime | None, forwarded_to: str | None = None
) -> list[CallEvent]:
    """`ext` is now the one talking with the other party (on the outside number `forwarded_to`, when its
    phone forwarded the call there)."""
    current = call.current
    if current is not None and not current.closed and current.extension == ext:
        return []
    if current is not None:
        current.close(at)
    leg = Leg(ext, channel, at, forwarded_to=forwarded_to)
    call.legs.append(leg)
    call.current = leg
    call.answered_by = ext
    call.add_extension(ext)
    if call.first_answer_at is None:
        call.first_answer_at = at
    return [call.event(env, "answered", ext, at, forwarded_to=forwarded_to)]


def _outside_number(env: Env, msg: Mapping[str, str]) -> str | None:
    """The outside number a Dial went to, from its `DialString` alone (`+375…@provider`, `PJSIP/+375…`)."""
    dial = _dial_target(msg.get("DialString", ""))
    if _NUMBER.match(dial) and not env.rules.is_internal_number(dial):
        return env.number(dial)
    return None


def _forwarded(
    env: Env, call: Call, msg: Mapping[str, str], forward: tuple[str, str | None] | None
) -> tuple[str, str | None] | None:
    """(the extension, the number) when the caller's Dial to an outside number carries on for a phone that
    rang: the leg Dial made for a phone's forward (a `DialEnd` with `Forward:` came just before), or a
    follow-me in the dialplan (the same caller dials out after a phone rang). None for anything else."""
    if call.direction not in ("in", "internal") or msg.get("Uniqueid") != call.caller_uid:
        return None
    number = _outside_number(env, msg)
    if forward is not None:
        return forward[0], forward[1] or number
    if number is not None and call.last_ext is not None:
        return call.last_ext, number
    return None


def _answered_in_place(env: Env, call: Call, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    """The caller's Dial was answered by a phone it never dialled: a pickup moved the picker's channel into
    the dialled one's place (Asterisk swaps the two), so `DestChannel` is the picker's."""
    dest_uid = msg.get("DestUniqueid", "")
    ext = call.pickups.get(dest_uid) or env.rules.dialled_extension(msg.get("DestChannel"), msg.get("DestContext"))
    if ext is None or not any(call.dials.values()):
        return []
    call.dials[dest_uid] = ext
    call.dials_done.add(dest_uid)
    return answer(env, call, ext, dest_uid, at)


def pickup(env: Env, call: Call, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    """A colleague took a ringing channel: whoever answers it is the picker."""
    target = msg.get("TargetUniqueid", "")
    picker = env.identity(msg.get("Channel", ""), msg.get("CallerIDNum"), msg.get("Context"))
    if picker is None:
        return []
    call.pickups[target] = picker
    if msg.get("Uniqueid"):
        call.pickups[msg["Uniqueid"]] = picker
    if target in call.dials_done and call.current is not None and call.current.channel == target:
        return answer(env, call, picker, target, at)
    return []
