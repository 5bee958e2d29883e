"""An attended transfer made by a SIP phone: the consultation is a call of its own (its own Linkedid).

No recording of the SIP office shows one (h_attended_transfer runs the consultation through the `atxfer`
feature's Local channel, inside the customer's call), so the stream is built in the shape Asterisk 22
documents (docs.asterisk.org, Asterisk_22_Documentation, AMI_Events/AttendedTransfer):

- `OrigTransfererChannel`/`…Uniqueid`/`…Linkedid`: the transferer's channel in the bridge established
  first; `SecondTransfererChannel`/`…`: its channel in the other one (chronological order, so either may
  be the customer's call);
- `TransfereeChannel`/`…Uniqueid`: the party in the first bridge; `TransferTargetChannel`/`…Uniqueid`: the
  party in the second;
- `Result: Success`, `DestType: Bridge` (the two bridges become one).
Then the transferer's two channels hang up, and the channels left in the joined bridge carry the oldest
Linkedid of the two calls (Asterisk's `ast_bridge_channel_update_linkedids` when a channel joins a bridge).
"""

from __future__ import annotations

import pytest

from agent.tracking.event import CallEvent
from tests.amistream import Chan, Stream, uid

CUSTOMER = "+375291234567"
DID = "375173880000"


def near(value: float | None, expected: float) -> bool:
    return value is not None and abs(value - expected) < 0.01


def answered_call(s: Stream, at: float, caller: Chan, phone: Chan, answer_after: float) -> None:
    s.newchannel(at, caller).newchannel(at, phone).dial(at, caller, phone, phone.name.split("/")[1].split("-")[0])
    s.dial_end(at + answer_after, caller, phone, "ANSWER")


def attended(s: Stream, at: float, orig: Chan, second: Chan, transferee: Chan, target: Chan) -> None:
    s.add(
        at,
        "AttendedTransfer",
        {"Result": "Success"},
        orig.fields("OrigTransferer"),
        {"OrigBridgeUniqueid": "b-orig", "OrigBridgeType": "basic", "OrigBridgeNumChannels": "2"},
        second.fields("SecondTransferer"),
        {"SecondBridgeUniqueid": "b-second", "SecondBridgeType": "basic", "SecondBridgeNumChannels": "2"},
        {"DestType": "Bridge", "DestBridgeUniqueid": "b-second"},
        transferee.fields("Transferee"),
        target.fields("TransferTarget"),
        {"IsExternal": "Yes"},
    )


def customer_then_consultation(hangup_first: bool) -> Stream:
    """The customer calls, 150 answers at 3 s; at 10 s 150 consults 151 (answers at 12 s); at 15 s 150's
    phone completes the transfer; the customer and 151 talk until 30 s."""
    s = Stream()
    trunk = Chan("PJSIP/provider-00000001", uid(1), uid(1), CUSTOMER, "from-trunk", DID, "4")
    p150 = Chan("PJSIP/150-00000002", uid(2), uid(1), "150")
    answered_call(s, 0, trunk, p150, 3)
    consult = uid(3, 10)
    c150 = Chan("PJSIP/150-00000003", consult, consult, "150", exten="151", state="4")
    p151 = Chan("PJSIP/151-00000004", uid(4, 10), consult, "151")
    answered_call(s, 10, c150, p151, 2)
    if hangup_first:
        s.hangup(15, c150)
    attended(s, 15, p150, c150, trunk, p151)
    s.hangup(15, p150)
    if not hangup_first:
        s.hangup(15, c150)
    s.hangup(30, trunk).hangup(30, p151.linked(uid(1)))
    return s


def by_call(events: list[CallEvent]) -> dict[str, list[CallEvent]]:
    out: dict[str, list[CallEvent]] = {}
    for e in events:
        out.setdefault(e.call_id, []).append(e)
    return out


@pytest.mark.parametrize("hangup_first", [False, True])
def test_consultation_ends_at_the_transfer(hangup_first: bool) -> None:
    calls = by_call(customer_then_consultation(hangup_first).play())
    customer, consultation = calls[uid(1)], calls[uid(3, 10)]
    assert [(e.event, e.extension) for e in customer] == [
        ("ringing", "150"),
        ("answered", "150"),
        ("transferred", "151"),
        ("answered", "151"),
        ("ended", "151"),
    ]
    end = customer[-1]
    assert (end.answered_by, end.extensions, end.phone) == ("151", ("150", "151"), CUSTOMER)
    legs = end.extra["legs"]
    assert [leg["extension"] for leg in legs] == ["150", "151"]
    assert near(legs[0]["talk_seconds"], 12) and near(legs[1]["talk_seconds"], 15)
    tr = customer[2]
    assert (tr.kind, tr.from_extension, tr.to_extension) == ("attended", "150", "151")
    # the consultation: 150 -> 151, 3 s of talk, over when the transfer was made
    cend = consultation[-1]
    assert (cend.direction, cend.phone, cend.answered_by) == ("internal", "150", "151")
    assert near(cend.talk_seconds, 3) and near(cend.ring_seconds, 2)
    assert cend.ended_at is not None and end.started_at is not None
    assert near((cend.ended_at - end.started_at).total_seconds(), 15)


def test_transfer_into_an_older_internal_call() -> None:
    """150 talks with 151 first; the customer calls 150 on a second line; 150 transfers the customer to 151.
    Orig is now the internal call, Second the customer's: the customer's call still goes on, with 151."""
    s = Stream()
    p150 = Chan("PJSIP/150-00000001", uid(1), uid(1), "150", exten="151", state="4")
    p151 = Chan("PJSIP/151-00000002", uid(2), uid(1), "151")
    answered_call(s, 0, p150, p151, 2)
    call = uid(3, 10)
    trunk = Chan("PJSIP/provider-00000003", call, call, CUSTOMER, "from-trunk", DID, "4")
    l150 = Chan("PJSIP/150-00000004", uid(4, 10), call, "150")
    answered_call(s, 10, trunk, l150, 1)
    attended(s, 20, p150, l150, p151, trunk)
    s.hangup(20, p150).hangup(20, l150)
    s.hangup(32, trunk.linked(uid(1))).hangup(32, p151)
    calls = by_call(s.play())
    internal, customer = calls[uid(1)], calls[call]
    end = customer[-1]
    assert (end.answered_by, end.extensions, end.phone, end.direction) == ("151", ("150", "151"), CUSTOMER, "in")
    assert [leg["extension"] for leg in end.extra["legs"]] == ["150", "151"]
    assert near(end.extra["legs"][1]["talk_seconds"], 12)
    iend = internal[-1]
    assert (iend.direction, iend.answered_by) == ("internal", "151")
    assert near(iend.talk_seconds, 18)  # 2 s to 20 s, the transfer
    assert iend.ended_at is not None and end.ended_at is not None and iend.ended_at < end.ended_at


def test_a_failed_transfer_changes_nothing() -> None:
    s = customer_then_consultation(hangup_first=False)
    for _, msg in s.messages:
        if msg["Event"] == "AttendedTransfer":
            msg["Result"] = "Fail"
    calls = by_call(s.play())
    assert all(e.event != "transferred" for e in calls[uid(1)])
