"""An incoming call into a conference room (ConfBridge; MeetMe's events have the same shape). No recording shows one.

`ConfBridge()` answers the caller's channel itself: that is no person answering. A manager comes in on a call
of its own (his phone dials the room's number, with a Linkedid of its own: a conference bridge gives its
channels no common Linkedid, unlike a two-party bridge) and talks with the caller in the room: he answered
the caller's call. His own call to the room stays an internal call of his.

Fields relied on, as Asterisk documents them (docs.asterisk.org, Asterisk 22, AMI_Events):
- `ConfbridgeJoin`/`ConfbridgeLeave`: `Conference` (the room), `BridgeUniqueid`, the channel's snapshot
  (`Channel`, `CallerIDNum`, `Context`, `Uniqueid`, `Linkedid`); `ConfbridgeEnd`: `Conference`.
- `MeetmeJoin`/`MeetmeLeave`/`MeetmeEnd`: `Meetme` (the room), `Usernum`, the channel's snapshot.
- `Newchannel`, `Newstate` (`Up` when the room answers), `Hangup`: `Uniqueid`, `Linkedid`.
"""

from __future__ import annotations

import pytest

from agent.tracking.event import CallEvent
from tests.amistream import Chan, Stream, uid

CUSTOMER = "+375291234567"
DID = "375173880005"
LID = uid(1)
TRUNK = Chan("PJSIP/provider-00000001", LID, LID, CUSTOMER, "from-pstn", DID, "6")
MANAGER = Chan("PJSIP/150-00000002", uid(2, 5), uid(2, 5), "150", "from-internal", "800", "6")


def join(s: Stream, at: float, chan: Chan, kind: str) -> Stream:
    room = {"Conference": "800"} if kind == "Confbridge" else {"Meetme": "800", "Usernum": "1"}
    return s.add(at, f"{kind}Join", chan.fields(), BridgeUniqueid="conf-bridge", **room)


def leave(s: Stream, at: float, chan: Chan, kind: str) -> Stream:
    room = {"Conference": "800"} if kind == "Confbridge" else {"Meetme": "800", "Usernum": "1"}
    return s.add(at, f"{kind}Leave", chan.fields(), BridgeUniqueid="conf-bridge", **room)


def ends(events: list[CallEvent]) -> dict[str, CallEvent]:
    return {e.call_id: e for e in events if e.event == "ended"}


@pytest.mark.parametrize("kind", ["Confbridge", "Meetme"])
def test_nobody_joins_the_room(kind: str) -> None:
    """The customer waits alone in room 800 from 0.1 s and hangs up at 30 s: answered by no person."""
    s = Stream().newchannel(0, TRUNK).add(0.05, "Newstate", TRUNK.fields())
    join(s, 0.1, TRUNK, kind)
    leave(s, 30, TRUNK, kind).hangup(30, TRUNK)
    s.add(30, f"{kind}End", Conference="800", Meetme="800")
    events = s.play()
    assert [e.event for e in events] == ["ended"]
    end = events[0]
    assert (end.direction, end.phone, end.did, end.answered_by, end.extensions) == ("in", CUSTOMER, DID, None, ())
    assert end.result == "cancelled" and end.talk_seconds == 0 and end.ring_seconds == 30


@pytest.mark.parametrize("kind", ["Confbridge", "Meetme"])
@pytest.mark.parametrize("manager_first", [False, True], ids=["customer-first", "manager-first"])
def test_a_manager_who_joins_the_room_answers_the_caller(kind: str, manager_first: bool) -> None:
    """The customer enters room 800 at 0.1 s (or after the manager); manager 150 dials 800 and is in the room
    from 5 s; he leaves at 25 s, the customer hangs up at 30 s."""
    s = Stream().newchannel(0, TRUNK).add(0.05, "Newstate", TRUNK.fields())
    if manager_first:
        s.newchannel(0.05, MANAGER)
        join(s, 0.06, MANAGER, kind)
        join(s, 5, TRUNK, kind)
    else:
        join(s, 0.1, TRUNK, kind)
        s.newchannel(4.9, MANAGER)
        join(s, 5, MANAGER, kind)
    leave(s, 25, MANAGER, kind).hangup(25, MANAGER)
    leave(s, 30, TRUNK, kind).hangup(30, TRUNK)
    events = s.play()
    customer = [e for e in events if e.call_id == LID]
    assert [(e.event, e.extension) for e in customer] == [("answered", "150"), ("ended", "150")]
    end = ends(events)[LID]
    assert (end.direction, end.phone, end.did) == ("in", CUSTOMER, DID)
    assert (end.answered_by, end.result, end.extensions) == ("150", "answered", ("150",))
    assert end.ring_seconds == 5 and end.talk_seconds == 20
    own = ends(events)[MANAGER.linkedid]  # the manager's own call to the room: his, internal, no customer in it
    assert (own.direction, own.phone, own.answered_by) == ("internal", "150", None)
    assert all(e.phone != CUSTOMER for e in events if e.call_id == MANAGER.linkedid)


def test_a_second_caller_in_the_room_is_answered_by_the_phone_already_there() -> None:
    """Two customers and one manager: each customer's call is answered by 150; nothing is left behind."""
    other = Chan("PJSIP/provider-00000003", uid(3, 8), uid(3, 8), "+375297654321", "from-pstn", DID, "6")
    s = Stream().newchannel(0, TRUNK)
    join(s, 0.1, TRUNK, "Confbridge")
    s.newchannel(5, MANAGER)
    join(s, 5, MANAGER, "Confbridge")
    s.newchannel(8, other)
    join(s, 8, other, "Confbridge")
    for at, chan in ((20, other), (25, MANAGER), (30, TRUNK)):
        leave(s, at, chan, "Confbridge").hangup(at, chan)
    s.add(30, "ConfbridgeEnd", Conference="800")
    events = s.play()
    by_call = ends(events)
    assert by_call[LID].answered_by == "150" and by_call[other.linkedid].answered_by == "150"
    assert by_call[other.linkedid].talk_seconds == 12
