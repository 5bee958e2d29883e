"""Conference rooms (ConfBridge, MeetMe): a phone that joins the room an outside caller waits in answers it.

A conference is no Dial: the caller's channel is answered by Asterisk (`ConfBridge()` on the DID) and a
manager's phone comes in on a call of its own (it dialled the room's number; a conference bridge, unlike a
two-party one, never gives its channels one Linkedid). So the room is what ties them: the first phone in the
room with an outside caller nobody talks to is the one that answered that caller. Only a person answers:
the room itself (Asterisk's answer) never does, and a room with no phone leaves the call unanswered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from agent.tracking.dial import answer
from agent.tracking.end import fallback_direction
from agent.tracking.event import CallEvent
from agent.tracking.state import Call, Env


@dataclass(slots=True)
class Member:
    call: Call
    uid: str
    extension: str | None  # None: an outside party


@dataclass(slots=True)
class Rooms:
    """Who is in which room now, by room name and channel."""

    rooms: dict[str, dict[str, Member]] = field(default_factory=dict)

    def join(self, env: Env, call: Call, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
        room = room_of(msg)
        uid = msg.get("Uniqueid", "")
        if not room or not uid:
            return []
        chan = call.channels.get(uid)
        name = chan.name if chan is not None else msg.get("Channel", "")
        cid = chan.cid if chan is not None else msg.get("CallerIDNum")
        context = chan.context if chan is not None else msg.get("Context")
        member = Member(call, uid, env.identity(name, cid, context))
        members = self.rooms.setdefault(room, {})
        for dead in [u for u, m in members.items() if not m.call.channels]:
            del members[dead]  # a member whose Leave never came (the link dropped meanwhile)
        members[uid] = member
        if member.extension is None:
            phone = next((m for m in members.values() if m.extension is not None and m.call.channels), None)
            return _answered(env, member.call, phone, at) if phone is not None else []
        out: list[CallEvent] = []
        for other in list(members.values()):
            if other.extension is None and other.call is not call and other.call.channels:
                out += _answered(env, other.call, member, at)
        return out

    def leave(self, msg: Mapping[str, str], at: datetime | None) -> None:
        """A phone that leaves the room stops talking with the callers it answered there."""
        room = room_of(msg)
        members = self.rooms.get(room)
        if members is None:
            return
        gone = members.pop(msg.get("Uniqueid", ""), None)
        if gone is not None and gone.extension is not None:
            for other in members.values():
                current = other.call.current
                if current is not None and current.channel == gone.uid:
                    current.close(at)
        if not members:
            del self.rooms[room]

    def end(self, msg: Mapping[str, str]) -> None:
        self.rooms.pop(room_of(msg), None)

    def __len__(self) -> int:
        return sum(len(m) for m in self.rooms.values())


def room_of(msg: Mapping[str, str]) -> str:
    """ConfBridge names its room `Conference`, MeetMe `Meetme`."""
    return msg.get("Conference") or msg.get("Meetme") or ""


def _answered(env: Env, call: Call, phone: Member, at: datetime | None) -> list[CallEvent]:
    if phone.extension is None or (call.current is not None and not call.current.closed):
        return []
    if call.direction is None:
        fallback_direction(env, call)  # no Dial decided it: the caller's own channel does
    if call.direction != "in":
        return []
    return answer(env, call, phone.extension, phone.uid, at)
