"""Catching up after the AMI link was down: `CoreShowChannel` rows against what the tracker holds.

Rows are what Asterisk says is live now. Nothing here invents a time: a talk that started while
the link was down has an unknown start, a call that ended meanwhile has an unknown end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta

from agent.tracking.dial import answer, dialled_number
from agent.tracking.event import CallEvent
from agent.tracking.state import Call, Chan, Env

_TALKING_STATE = "6"  # Up


def _chan(row: Mapping[str, str]) -> Chan:
    return Chan(
        row["Uniqueid"],
        row.get("Channel", ""),
        row.get("CallerIDNum", ""),
        row.get("Context", ""),
        row.get("Exten", ""),
    )


def _duration(value: str) -> timedelta | None:
    """`Duration` is `HH:MM:SS` (or plain seconds on some versions)."""
    try:
        parts = [int(p) for p in value.split(":")]
    except ValueError:
        return None
    total = 0
    for p in parts:
        total = total * 60 + p
    return timedelta(seconds=total)


def _talking(env: Env, rows: list[Mapping[str, str]]) -> list[tuple[str, str]]:
    """(extension, uid) of phones that are up, i.e. picked up. A dialled phone is Up from the moment it
    answers; the bridge may come a few milliseconds later (a snapshot can fall in between), so a bridged
    phone is preferred but an unbridged Up one counts too."""
    up = [row for row in rows if row.get("ChannelState") == _TALKING_STATE]
    up.sort(key=lambda row: not row.get("BridgeId"))
    found = []
    for row in up:
        ext = env.rules.phone_extension(row.get("Channel"))
        if ext:
            found.append((ext, row["Uniqueid"]))
    return found


def reconcile_call(env: Env, call: Call, rows: list[Mapping[str, str]], at: datetime | None) -> list[CallEvent]:
    """Drop channels that are gone, adopt new ones, notice an answer that happened meanwhile."""
    live = {row["Uniqueid"] for row in rows}
    for uid in [u for u in call.channels if u not in live]:
        del call.channels[uid]
        if call.current is not None and call.current.channel == uid:
            call.current.close(None)
    for row in rows:
        if row["Uniqueid"] not in call.channels:
            call.channels[row["Uniqueid"]] = _chan(row)
    if not call.channels:
        return []
    talking = _talking(env, rows)
    current = call.current
    if talking and (current is None or current.closed):
        ext, uid = talking[0]
        if call.direction is None:
            call.direction = "in"
        events = answer(env, call, ext, uid, None)
        return [dataclasses.replace(e, at=at) for e in events]
    return []


def rebuild_call(env: Env, call_id: str, rows: list[Mapping[str, str]], at: datetime | None) -> Call:
    """A live call the tracker never saw (agent restart): rebuild enough of it to end it well."""
    rows = sorted(rows, key=lambda r: r["Uniqueid"] != call_id)  # the originating channel first
    first = rows[0]
    started = None
    if at is not None:
        age = _duration(first.get("Duration", ""))
        started = at - age if age is not None else None
    call = Call(call_id, started)
    for row in rows:
        call.channels[row["Uniqueid"]] = _chan(row)
    call.first = call.channels[first["Uniqueid"]]
    # The channel running Dial/Queue is the caller side; else the originating one.
    caller = next((r for r in rows if r.get("Application") in ("Dial", "Queue")), first)
    call.caller_uid = caller["Uniqueid"]
    ext = env.identity(caller.get("Channel", ""), caller.get("CallerIDNum"), caller.get("Context"))
    call.caller_ext = ext
    others = [env.rules.phone_extension(r.get("Channel")) for r in rows if r is not caller]
    if ext is None:
        call.direction = "in"
        call.phone = env.number(caller.get("CallerIDNum"))
        exten = caller.get("Exten", "")
        call.did = exten if exten and exten != "s" else None
    elif any(o is None for o in others) or not others:
        call.direction = "out"
        outside = next(
            (r for r in rows if r is not caller and env.rules.phone_extension(r.get("Channel")) is None), None
        )
        number = outside.get("CallerIDNum") if outside is not None else None
        call.phone = env.number(number or dialled_number({"Exten": caller.get("Exten", "")}))
        call.add_extension(ext)
    else:
        call.direction = "internal"
        call.phone = ext
    for row in rows:
        phone_ext = env.rules.phone_extension(row.get("Channel"))
        if row is not caller and phone_ext is not None:
            call.dials[row["Uniqueid"]] = phone_ext
            call.add_extension(phone_ext)
            call.last_ext = phone_ext
    talking = _talking(env, [r for r in rows if r is not caller])
    if call.direction == "out" and ext is not None and caller.get("BridgeId"):
        answer(env, call, ext, call.caller_uid, None)
    elif talking:
        answer(env, call, talking[0][0], talking[0][1], None)
    for uid in list(call.dials):
        if call.current is not None and call.current.channel == uid:
            call.dials_done.add(uid)
    return call
