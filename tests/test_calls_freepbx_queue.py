"""A FreePBX queue whose members are Local channels (`Local/151@from-queue/n`), each of which dials the phone.

No recording shows it: the recorded queues ring `PJSIP/151` (p_i) or a Local pair that *is* the phone
(`Local/151@agents`, i). FreePBX's queue members are `Local/<ext>@from-queue/n`: app_queue dials the Local
channel, whose `;2` half runs `from-queue` and then `Dial(PJSIP/<ext>)` (macro-dial-one). The member that
answers is the phone behind the Local pair; with the `/n` flag missing, Asterisk optimises the pair away
once both sides are up and the phone's channel takes the Local `;1` half's place in the caller's bridge.

Fields relied on, as Asterisk documents them (docs.asterisk.org, Asterisk 22, AMI_Events):
- `AgentCalled`, `AgentRingNoAnswer`, `AgentConnect`: `Channel`/`Uniqueid` the queue caller,
  `DestChannel`/`DestUniqueid` the member's channel (here the Local `;1` half), `Interface`, `MemberName`.
- `DialBegin`/`DialEnd`: `Channel`/`Uniqueid` the dialling channel (the caller for app_queue's own dial, the
  Local `;2` half for the member's Dial), `DestChannel`/`DestUniqueid`, `DialString`, `DialStatus`.
- `LocalOptimizationBegin`/`End`: `LocalOne…`/`LocalTwo…` the two halves, `Source…` the channel that takes
  their place, `Id`; `BridgeEnter` with `SwapUniqueid` (the channel it replaces in the bridge).
- `Hangup`: `Uniqueid`, `Cause`.
"""

from __future__ import annotations

import pytest

from agent.tracking.event import CallEvent
from tests.amistream import Chan, Stream, uid

CUSTOMER = "+375291234567"
DID = "375173880000"
LID = uid(1)
TRUNK = Chan("PJSIP/provider-00000001", LID, LID, CUSTOMER, "from-pstn", DID, "4")


def member(ext: str, n: int, seq: int) -> tuple[Chan, Chan, Chan]:
    """The Local pair app_queue makes for `ext` and the phone channel its `;2` half dials."""
    one = Chan(f"Local/{ext}@from-queue-0000000{seq};1", uid(n), LID, DID, "from-queue", ext, "0")
    two = Chan(f"Local/{ext}@from-queue-0000000{seq};2", uid(n + 1), LID, DID, "from-queue", ext, "4")
    phone = Chan(f"PJSIP/{ext}-0000000{seq + 1}", uid(n + 2), LID, ext, "from-internal", "s", "0")
    return one, two, phone


def ring(s: Stream, at: float, ext: str, one: Chan, two: Chan, phone: Chan) -> None:
    s.newchannel(at, one).newchannel(at, two)
    s.add(at, "LocalBridge", one.fields("LocalOne"), two.fields("LocalTwo"), LocalOptimization="No")
    s.add(at, "AgentCalled", TRUNK.fields(), one.fields("Dest"), Queue="400", Interface=f"Local/{ext}@from-queue/n")
    s.dial(at, TRUNK, one, f"Local/{ext}@from-queue/n")
    s.newchannel(at + 0.01, phone)
    s.dial(at + 0.01, two, phone, f"PJSIP/{ext}/sip:{ext}@10.0.0.{ext[-2:]}:5060")


def queue_call(optimised: bool) -> Stream:
    """The customer calls the queue at 0 s; 151 rings 6 s and times out; 152 rings from 7 s, answers at 10 s;
    the customer hangs up at 20 s."""
    s = Stream().newchannel(0, TRUNK)
    s.add(0, "QueueCallerJoin", TRUNK.fields(), Queue="400", Position="1", Count="1")
    a1, a2, p151 = member("151", 2, 1)
    ring(s, 1, "151", a1, a2, p151)
    s.add(7, "AgentRingNoAnswer", TRUNK.fields(), a1.fields("Dest"), Queue="400", RingTime="6")
    s.dial_end(7, TRUNK, a1, "NOANSWER").dial_end(7, TRUNK, a1, "CANCEL")
    s.dial_end(7, a2, p151, "CANCEL").hangup(7, p151, "0").hangup(7, a1).hangup(7, a2)
    b1, b2, p152 = member("152", 5, 3)
    ring(s, 8, "152", b1, b2, p152)
    s.dial_end(10, b2, p152, "ANSWER")
    s.add(10, "BridgeEnter", b2.fields(), BridgeUniqueid="bridge-2")
    s.add(10, "BridgeEnter", p152.fields(), BridgeUniqueid="bridge-2")
    s.dial_end(10, TRUNK, b1, "ANSWER")
    s.add(10, "QueueCallerLeave", TRUNK.fields(), Queue="400", Position="1", Count="0")
    s.add(10, "AgentConnect", TRUNK.fields(), b1.fields("Dest"), Queue="400", HoldTime="10", RingTime="2")
    s.add(10, "BridgeEnter", TRUNK.fields(), BridgeUniqueid="bridge-1")
    s.add(10, "BridgeEnter", b1.fields(), BridgeUniqueid="bridge-1")
    if optimised:
        s.add(10.1, "LocalOptimizationBegin", b1.fields("LocalOne"), b2.fields("LocalTwo"), p152.fields("Source"))
        s.add(10.1, "BridgeLeave", p152.fields(), BridgeUniqueid="bridge-2")
        s.add(10.1, "BridgeEnter", p152.fields(), BridgeUniqueid="bridge-1", SwapUniqueid=b1.uniqueid)
        s.add(10.1, "BridgeLeave", b1.fields(), BridgeUniqueid="bridge-1")
        s.add(10.1, "LocalOptimizationEnd", b1.fields("LocalOne"), b2.fields("LocalTwo"), Success="Yes", Id="0")
        s.hangup(10.1, b1).hangup(10.1, b2)
        s.hangup(20, TRUNK).hangup(20, p152)
    else:
        s.hangup(20, TRUNK).hangup(20, b1).hangup(20, b2).hangup(20, p152)
    return s


def kinds(events: list[CallEvent]) -> list[tuple[str, str | None]]:
    return [(e.event, e.extension) for e in events]


@pytest.mark.parametrize("optimised", [False, True], ids=["local-n", "optimised"])
def test_queue_of_local_members_second_answers(optimised: bool) -> None:
    events = queue_call(optimised).play()
    assert kinds(events) == [("ringing", "151"), ("ringing", "152"), ("answered", "152"), ("ended", "152")]
    assert {e.call_id for e in events} == {LID}
    end = events[-1]
    assert (end.direction, end.phone, end.did) == ("in", CUSTOMER, DID)
    assert (end.answered_by, end.result, end.extensions) == ("152", "answered", ("151", "152"))
    assert end.ring_seconds == 10 and end.talk_seconds == 10
    assert [leg["extension"] for leg in end.extra["legs"]] == ["152"]


def test_queue_of_local_members_nobody_answers() -> None:
    """Both members time out and the queue gives up (its timeout): the caller's channel hangs up. A queue
    nobody answered is no member's missed call (agent.tracking.end.owner)."""
    s = Stream().newchannel(0, TRUNK)
    for ext, n, seq, at in (("151", 2, 1, 1.0), ("152", 5, 3, 8.0)):
        one, two, phone = member(ext, n, seq)
        ring(s, at, ext, one, two, phone)
        s.add(at + 6, "AgentRingNoAnswer", TRUNK.fields(), one.fields("Dest"), Queue="400", RingTime="6")
        s.dial_end(at + 6, TRUNK, one, "NOANSWER").dial_end(at + 6, TRUNK, one, "CANCEL")
        s.dial_end(at + 6, two, phone, "CANCEL").hangup(at + 6, phone, "0").hangup(at + 6, one).hangup(at + 6, two)
    s.add(15, "QueueCallerAbandon", TRUNK.fields(), Queue="400", Position="1", OriginalPosition="1", HoldTime="15")
    s.hangup(15, TRUNK)
    events = s.play()
    assert kinds(events) == [("ringing", "151"), ("ringing", "152"), ("ended", None)]
    end = events[-1]
    assert (end.answered_by, end.result, end.extensions) == (None, "no_answer", ("151", "152"))
    assert end.ring_seconds == 15
