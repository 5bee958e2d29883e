"""Call parking (res_parking): 150 answers, parks the customer, 152 takes the call from the slot.

No recording shows parking, so the streams are built in the shape Asterisk 22 documents
(docs.asterisk.org, Asterisk_22_Documentation, AMI_Events/…), with the fields the tracker relies on:
- `BlindTransfer` (parking by a blind transfer to the parking extension): `Result`, `Transferer…` and
  `Transferee…` channel snapshots, `Extension`, `Context`, `IsExternal`;
- `ParkedCall`: the `Parkee…` snapshot, `ParkerDialString`, `Parkinglot`, `ParkingSpace`, `ParkingTimeout`;
- `UnParkedCall`: `Parkee…`, `Parker…` and `Retriever…` snapshots; the retriever's channel is a new channel
  that dialled the slot (`ParkedCall()`), with a Linkedid of its own until it joins the parkee's bridge
  (then it takes the older Linkedid, as every channel joining a bridge does);
- `ParkedCallTimeOut`: `Parkee…`, `Parker…`; the parkee then goes back to the parker by an ordinary `Dial`
  from its own channel (`comebacktoorigin`, the `park-dial` context) with `DialBegin`/`DialEnd`;
- `ParkedCallGiveUp`: `Parkee…`, `Parker…`; the parkee hung up while parked.
"""

from __future__ import annotations

import re
from pathlib import Path

from agent.tracking.event import CallEvent
from agent.tracking.tracker import handled_events as tracker_handlers
from tests.amistream import Chan, Stream, uid

CUSTOMER = "+375291234567"
TRUNK = Chan("PJSIP/provider-00000001", uid(1), uid(1), CUSTOMER, "from-trunk", "375173880000", "4")
P150 = Chan("PJSIP/150-00000002", uid(2), uid(1), "150")
PARKED = {"ParkerDialString": "PJSIP/150", "Parkinglot": "default", "ParkingSpace": "701"}


def parked_at_5() -> Stream:
    """The customer calls, 150 answers at 2 s and parks the call in slot 701 at 5 s."""
    s = Stream()
    s.newchannel(0, TRUNK).newchannel(0, P150).dial(0, TRUNK, P150, "150").dial_end(2, TRUNK, P150, "ANSWER")
    s.add(
        5,
        "BlindTransfer",
        {"Result": "Success"},
        P150.fields("Transferer"),
        TRUNK.fields("Transferee"),
        {"IsExternal": "No", "Context": "from-internal", "Extension": "700"},
    )
    s.hangup(5, P150)
    s.add(5, "ParkedCall", TRUNK.fields("Parkee"), PARKED, ParkingTimeout="45", ParkingDuration="0")
    return s


def near(value: float | None, expected: float) -> bool:
    return value is not None and abs(value - expected) < 0.01


def the_call(events: list[CallEvent]) -> CallEvent:
    assert {e.call_id for e in events} == {uid(1)}, events  # no other call, none invented
    ends = [e for e in events if e.event == "ended"]
    assert len(ends) == 1
    return ends[0]


def test_retrieved_from_the_slot_by_a_colleague() -> None:
    s = parked_at_5()
    p152 = Chan("PJSIP/152-00000003", uid(3, 12), uid(3, 12), "152", exten="701", state="4")
    s.newchannel(12, p152)
    s.add(12, "UnParkedCall", TRUNK.fields("Parkee"), P150.fields("Parker"), PARKED, p152.fields("Retriever"))
    s.hangup(20, TRUNK).hangup(20, p152.linked(uid(1)))
    events = s.play()
    end = the_call(events)
    assert [(e.event, e.extension) for e in events if e.event != "transferred"] == [
        ("ringing", "150"),
        ("answered", "150"),
        ("answered", "152"),
        ("ended", "152"),
    ]
    assert (end.answered_by, end.result, end.extensions) == ("152", "answered", ("150", "152"))
    legs = end.extra["legs"]
    assert [leg["extension"] for leg in legs] == ["150", "152"]
    assert near(legs[0]["talk_seconds"], 3) and near(legs[1]["talk_seconds"], 8)


def test_parked_too_long_goes_back_to_the_parker() -> None:
    s = parked_at_5()
    s.add(50, "ParkedCallTimeOut", TRUNK.fields("Parkee"), P150.fields("Parker"), PARKED, ParkingDuration="45")
    back = Chan("PJSIP/150-00000004", uid(4, 50), uid(1), "150")
    s.newchannel(50, back).dial(50, TRUNK, back, "PJSIP/150").dial_end(53, TRUNK, back, "ANSWER")
    s.hangup(60, TRUNK).hangup(60, back)
    end = the_call(s.play())
    assert (end.answered_by, end.result, end.extensions) == ("150", "answered", ("150",))
    assert [leg["extension"] for leg in end.extra["legs"]] == ["150", "150"]
    assert near(end.talk_seconds, 10)


def test_caller_hangs_up_while_parked() -> None:
    s = parked_at_5()
    s.add(20, "ParkedCallGiveUp", TRUNK.fields("Parkee"), P150.fields("Parker"), PARKED, ParkingDuration="15")
    s.hangup(20, TRUNK)
    end = the_call(s.play())
    assert (end.answered_by, end.result, end.extension) == ("150", "answered", "150")
    assert near(end.talk_seconds, 3)


def test_readme_event_filter_lets_through_every_event_the_tracker_reads() -> None:
    """manager.conf's `eventfilter` from the README is a regex over the event's text: each event name the
    tracker has a handler for must pass it, or a PBX set up as the README says would never send it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (line,) = [x for x in readme.splitlines() if x.startswith("eventfilter = ")]
    pattern = re.compile(line.removeprefix("eventfilter = "))
    missing = [name for name in tracker_handlers() if not pattern.search(f"Event: {name}\r\n")]
    assert missing == []
    assert "UnParkedCall" in tracker_handlers()
