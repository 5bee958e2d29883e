"""Call pickup and call forwarding, on the SIP office's recordings (README "Call pickup and call forwarding")
and on variants of them that keep Asterisk's shapes: the same call without the `Pickup` event, a group
pickup (`*8`), a follow-me in the dialplan instead of the phone's `302`.

Fields relied on, as Asterisk documents them (docs.asterisk.org, Asterisk 22, AMI_Events):
- `Pickup`: `Channel`/`Uniqueid` (the picker), `TargetUniqueid`/`TargetLinkedid` (the ringing channel taken).
  Directed `Pickup(ext@context)`, `PICKUPMARK` and group pickup all run the same pickup and raise this event.
- `DialEnd`: `DialStatus` and the optional `Forward` (where the dialled channel forwarded the call); app_dial
  then begins a new Dial leg to that destination (`DialBegin` from the same caller).
"""

from __future__ import annotations

import re

from agent.repair.replay import replay
from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from agent.tracking.tracker import CallTracker
from tests.recordings import ami, play

CUSTOMER_A = "+375291234567"
MOBILE_150 = "+375296660150"


def tracker() -> CallTracker:
    return CallTracker(ChannelRules(region="BY"), "100", "office")


def kinds(events: list[CallEvent]) -> list[tuple[str, str | None]]:
    return [(e.event, e.extension) for e in events]


def without(data: bytes, pattern: bytes) -> bytes:
    """The stream without the messages that match `pattern`."""
    banner, _, body = data.partition(b"\r\n")
    kept = [m for m in body.split(b"\r\n\r\n") if not re.search(pattern, m)]
    return banner + b"\r\n" + b"\r\n\r\n".join(kept)


def test_pickup_is_one_call_answered_by_the_picker() -> None:
    t = tracker()
    events = play("p_m_pickup", tracker=t)
    assert kinds(events) == [("ringing", "150"), ("answered", "151"), ("ended", "151")]
    assert {e.call_id for e in events} == {"1795481567.19"}  # the picker's own 1795481570.21 is no call
    end = events[-1]
    assert [leg["extension"] for leg in end.extra["legs"]] == ["151"]
    assert t.live_calls() == 0 and t.live_channels() == 0


def test_pickup_without_the_pickup_event() -> None:
    """The Dial's ANSWER names the picker's channel (Asterisk moved it into the ringing one's place)."""
    data = without(ami("p_m_pickup"), rb"^Event: Pickup\r\n")
    t = tracker()
    events = replay(data, None, t)
    assert kinds(events) == [("ringing", "150"), ("answered", "151"), ("ended", "151")]
    end = events[-1]
    assert (end.answered_by, end.result, end.extensions) == ("151", "answered", ("150", "151"))
    assert t.live_calls() == 0


def test_group_pickup_is_the_same_pickup() -> None:
    """`*8` (`Pickup()` by pickup group) raises the same `Pickup` event; only the picker's dialplan differs."""
    data = ami("p_m_pickup").replace(b"Exten: **150\r\n", b"Exten: *8\r\n").replace(b"**150", b"*8")
    events = replay(data, None, tracker())
    end = events[-1]
    assert (end.answered_by, end.result, end.extensions, end.direction) == ("151", "answered", ("150", "151"), "in")
    assert len({e.call_id for e in events}) == 1


def test_forward_to_a_mobile_is_the_forwarding_managers_call() -> None:
    events = play("p_t_forward_no_answer")
    assert kinds(events) == [("ringing", "150"), ("answered", "150"), ("ended", "150")]
    answered, end = events[1], events[2]
    assert answered.forwarded_to == MOBILE_150 and end.forwarded_to == MOBILE_150
    assert all(e.phone == CUSTOMER_A for e in events)  # the customer stays the caller, never the mobile
    assert MOBILE_150 not in end.extensions
    assert answered.to_json()["forwarded_to"] == MOBILE_150 and end.to_json()["forwarded_to"] == MOBILE_150
    assert "forwarded_to" not in events[0].to_json()
    assert "forwarded_to" not in play("p_a_incoming_answered")[-1].to_json()


def test_follow_me_in_the_dialplan() -> None:
    """No `Forward`: the phone's Dial ends NOANSWER and the same caller then dials the manager's mobile."""
    forward = b"Forward: +375296660150\r\nDialStatus: CANCEL"
    data = ami("p_t_forward_no_answer").replace(forward, b"DialStatus: NOANSWER")
    assert b"Forward:" not in data
    end = replay(data, None, tracker())[-1]
    assert (end.answered_by, end.result, end.forwarded_to, end.phone) == ("150", "answered", MOBILE_150, CUSTOMER_A)


def test_outside_number_with_no_phone_before_it_is_no_forward() -> None:
    """A DID that dials an outside number straight away: nobody's phone forwarded it, nobody is credited."""
    data = without(ami("p_t_forward_no_answer"), rb"DestChannel: PJSIP/150-")
    end = replay(data, None, tracker())[-1]
    assert end.answered_by is None and end.forwarded_to is None and end.extensions == ()
