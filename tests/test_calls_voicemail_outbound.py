"""Calls no recording shows: an incoming call that nobody answers and that the dialplan sends to `VoiceMail()`,
and a manager's outgoing call through an outbound route (a Local channel into `from-internal`, or a PJSIP dial
string with a SIP URI).

- VoiceMail answers the caller's channel itself (`Newstate Up` on the trunk channel, no bridge with a phone),
  like p_n's IVR: that is no person answering, so the call stays a missed one.
- An outbound route run in a Local channel: the phone's channel dials `Local/<number>@from-internal`, whose
  `;2` half dials the trunk. The remote party answering the trunk leg answers the manager's call.

Fields relied on, as Asterisk documents them (docs.asterisk.org, Asterisk 22, AMI_Events):
- `Newchannel`: `Channel`, `CallerIDNum`, `Context`, `Exten`, `Uniqueid`, `Linkedid`.
- `DialBegin`/`DialEnd`: the caller's snapshot, `DestChannel`, `DestContext`, `DestUniqueid`, `DialString`
  (for chan_pjsip `<endpoint>`, `<endpoint>/<SIP URI>` or `<number>@<endpoint>`), `DialStatus`.
- `Newstate`: `ChannelState`/`ChannelStateDesc` (`Up` when VoiceMail answers).
- `Hangup`: `Uniqueid`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent.tracking.event import CallEvent
from tests.amistream import Chan, Stream, uid

CUSTOMER = "+375291234567"
REMOTE = "+375447654321"
DID = "375173880000"
LID = uid(1)
TRUNK = Chan("PJSIP/provider-00000001", LID, LID, CUSTOMER, "from-pstn", DID, "4")
PHONE_150 = Chan("PJSIP/150-00000002", uid(2), LID, "150", "from-internal", "s", "0")


def kinds(events: list[CallEvent]) -> list[tuple[str, str | None]]:
    return [(e.event, e.extension) for e in events]


@pytest.mark.parametrize(("status", "result", "rang"), [("NOANSWER", "no_answer", 20.0), ("BUSY", "busy", 0.1)])
def test_voicemail_after_a_phone_that_did_not_answer_is_a_missed_call(status: str, result: str, rang: float) -> None:
    """150 rings (or is busy); Dial returns; `VoiceMail(150@default,u)` answers the trunk channel; the caller
    leaves a 25 s message and hangs up."""
    s = Stream().newchannel(0, TRUNK).newchannel(0.01, PHONE_150).dial(0.01, TRUNK, PHONE_150, "PJSIP/150")
    s.dial_end(rang, TRUNK, PHONE_150, status).hangup(rang, PHONE_150, "0" if status == "NOANSWER" else "17")
    up = Chan(TRUNK.name, LID, LID, CUSTOMER, "macro-vm", "s-NOANSWER", "6")
    s.add(rang + 0.01, "Newexten", up.fields(), Application="VoiceMail", AppData="150@default,u")
    s.add(rang + 0.02, "Newstate", up.fields())
    s.add(rang + 25, "VarSet", up.fields(), Variable="VMSTATUS", Value="SUCCESS")
    s.hangup(rang + 25, up)
    events = s.play()
    assert kinds(events) == [("ringing", "150"), ("ended", "150")]
    end = events[-1]
    assert (end.direction, end.phone, end.did) == ("in", CUSTOMER, DID)
    assert (end.answered_by, end.result, end.extensions) == (None, result, ("150",))
    assert end.ring_seconds == rang + 25 and end.talk_seconds == 0  # the whole call waited for a person
    assert "legs" not in end.extra


def test_straight_to_voicemail_is_no_answered_call() -> None:
    """A DID that goes to voicemail at once (the extension's do-not-disturb): no phone rang, no one answered."""
    up = Chan(TRUNK.name, LID, LID, CUSTOMER, "macro-vm", "s-DND", "6")
    s = Stream().newchannel(0, TRUNK).add(0.01, "Newstate", up.fields()).hangup(20, up)
    end = s.play()[-1]
    assert (end.direction, end.phone, end.answered_by, end.extensions) == ("in", CUSTOMER, None, ())
    assert end.result != "answered" and end.talk_seconds == 0


CALLER = Chan("PJSIP/150-00000001", LID, LID, "150", "from-internal", "80447654321", "4")


def via_local(status: str) -> Stream:
    """150 dials 80447654321 at 0 s; the route dials `Local/+375447654321@from-internal`, whose `;2` half dials
    the trunk; the remote party rings 4 s, then answers (talks 6 s) or does not."""
    one = Chan("Local/+375447654321@from-internal-00000001;1", uid(2), LID, "150", "from-internal", REMOTE, "0")
    two = Chan("Local/+375447654321@from-internal-00000001;2", uid(3), LID, "150", "from-internal", REMOTE, "4")
    leg = Chan("PJSIP/provider-00000003", uid(4), LID, "<unknown>", "from-pstn", "s", "0")
    s = Stream().newchannel(0, CALLER).newchannel(0.01, one).newchannel(0.01, two)
    s.dial(0.01, CALLER, one, "+375447654321@from-internal")
    s.newchannel(0.02, leg).dial(0.02, two, leg, "+375447654321@provider")
    s.dial_end(4, two, leg, status)
    if status == "ANSWER":
        s.dial_end(4, CALLER, one, "ANSWER")
        return s.hangup(10, CALLER).hangup(10, one).hangup(10, two).hangup(10, leg)
    s.hangup(4, leg).hangup(4.01, two).hangup(4.01, one)
    return s.dial_end(4.01, CALLER, one, status).hangup(4.02, CALLER)


def direct(status: str, dial_string: str) -> Stream:
    """150 dials 980447654321 (the route's `9` prefix); the route dials the trunk with `dial_string`."""
    caller = Chan("PJSIP/150-00000001", LID, LID, "150", "from-internal", "980447654321", "4")
    leg = Chan("PJSIP/provider-00000002", uid(2), LID, "<unknown>", "from-pstn", "s", "0")
    s = Stream().newchannel(0, caller).newchannel(0.01, leg).dial(0.01, caller, leg, dial_string)
    s.dial_end(4, caller, leg, status)
    end = 10 if status == "ANSWER" else 4
    return s.hangup(end, leg).hangup(end, caller)


@pytest.mark.parametrize("status", ["ANSWER", "NOANSWER", "BUSY"])
@pytest.mark.parametrize(
    "stream",
    [
        via_local,
        lambda status: direct(status, "provider/sip:+375447654321@sip.provider.by"),
        lambda status: direct(status, "+375447654321@provider"),
    ],
    ids=["local-route", "sip-uri", "number-at-endpoint"],
)
def test_outgoing_through_an_outbound_route(stream: Callable[[str], Stream], status: str) -> None:
    events = stream(status).play()
    end = events[-1]
    assert {e.call_id for e in events} == {LID}
    assert all((e.direction, e.phone, e.extension) == ("out", REMOTE, "150") for e in events)
    assert end.extensions == ("150",)
    if status == "ANSWER":
        assert [e.event for e in events] == ["ringing", "answered", "ended"]
        assert (end.answered_by, end.result, end.ring_seconds, end.talk_seconds) == ("150", "answered", 4, 6)
    else:
        assert [e.event for e in events] == ["ringing", "ended"]
        assert (end.answered_by, end.result) == (None, "no_answer" if status == "NOANSWER" else "busy")
        assert end.ring_seconds is not None and 4 <= end.ring_seconds <= 4.02
