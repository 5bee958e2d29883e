"""Trunks that are not `PJSIP/provider`: DAHDI (PRI and analogue FXO), IAX2, and a PJSIP trunk named like an
extension (`PJSIP/7001`, what a provider's account number often becomes in FreePBX). No recording shows one.

A channel's name is `<tech>/<resource>-<sequence>` (PJSIP, SIP, IAX2), `DAHDI/i<span>/<number>-<n>` for an
ISDN call and `DAHDI/<channel>-<n>` for an analogue port; neither DAHDI form names an extension. Which
channel is the outside party then comes from the dialplan context its endpoint sends calls to: the contexts
FreePBX generates (`from-pstn`, `from-trunk`, and `from-digital`/`from-analog` for DAHDI spans and FXO ports),
or the operator's `trunk_contexts`; a dialled channel's `Newchannel` (and `DialBegin`'s `DestContext`) carries
its endpoint's context too.

Fields relied on, as Asterisk documents them (docs.asterisk.org, Asterisk 22, AMI_Events):
- `Newchannel`: `Channel`, `CallerIDNum`, `Context`, `Exten`, `Uniqueid`, `Linkedid`.
- `DialBegin`/`DialEnd`: the caller's snapshot, `DestChannel`, `DestContext`, `DestUniqueid`, `DialString`,
  `DialStatus`.
- `Hangup`: `Uniqueid`.
"""

from __future__ import annotations

import pytest

from agent.tracking.channels import ChannelRules
from agent.tracking.tracker import CallTracker
from tests.amistream import Chan, Stream, uid

CUSTOMER = "+375291234567"
REMOTE = "+375447654321"
DID = "375173880000"
LID = uid(1)


def incoming(trunk: Chan) -> Stream:
    """`trunk` brings the call at 0 s; it dials phone 150, which answers at 3 s; the caller hangs up at 10 s."""
    phone = Chan("PJSIP/150-00000002", uid(2), LID, "150", "from-internal", "s", "0")
    s = Stream().newchannel(0, trunk).newchannel(0.01, phone).dial(0.01, trunk, phone, "PJSIP/150")
    return s.dial_end(3, trunk, phone, "ANSWER").hangup(10, trunk).hangup(10, phone)


@pytest.mark.parametrize(
    ("channel", "context", "cid", "phone"),
    [
        ("DAHDI/i1/80291234567-1", "from-digital", "80291234567", CUSTOMER),  # an ISDN span (FreePBX)
        ("DAHDI/i1/80291234567-1", "from-pstn", "80291234567", CUSTOMER),
        ("DAHDI/1-1", "from-analog", "2223344", "+3752223344"),  # an analogue FXO port, a local number
        ("DAHDI/1-1", "from-analog", "1234", "1234"),  # a short caller ID, like an extension
        ("IAX2/provider-1234", "from-trunk", CUSTOMER, CUSTOMER),
        ("IAX2/provider-1234", "from-trunk", "112", "112"),
        ("PJSIP/7001-00000001", "from-pstn", CUSTOMER, CUSTOMER),  # a trunk named like an extension
        ("PJSIP/7001-00000001", "from-trunk", "0291234567", CUSTOMER),
    ],
)
def test_incoming_over_other_trunks(channel: str, context: str, cid: str, phone: str) -> None:
    trunk = Chan(channel, LID, LID, cid, context, DID, "4")
    events = incoming(trunk).play()
    assert [(e.event, e.extension) for e in events] == [("ringing", "150"), ("answered", "150"), ("ended", "150")]
    end = events[-1]
    assert (end.direction, end.phone, end.did) == ("in", phone, DID)
    assert (end.answered_by, end.result, end.extensions) == ("150", "answered", ("150",))
    assert (end.ring_seconds, end.talk_seconds) == (3, 7)


def test_a_numeric_trunk_in_a_context_of_the_admins_own_needs_trunk_contexts() -> None:
    """Nothing in `PJSIP/7001-…` in context `incoming` says trunk; `[[pbx]] trunk_contexts` does."""
    trunk = Chan("PJSIP/7001-00000001", LID, LID, CUSTOMER, "incoming", DID, "4")
    rules = ChannelRules(region="BY", trunk_contexts=("incoming",))
    end = incoming(trunk).play(CallTracker(rules, "100", "office"))[-1]
    assert (end.direction, end.phone, end.answered_by) == ("in", CUSTOMER, "150")


def outgoing(leg: Chan, dial_string: str, status: str) -> Stream:
    """Phone 150 dials out at 0 s through `leg`; ringing 4 s, then `status`; talk 6 s when answered."""
    caller = Chan("PJSIP/150-00000001", LID, LID, "150", "from-internal", "80447654321", "4")
    s = Stream().newchannel(0, caller).newchannel(0.01, leg).dial(0.01, caller, leg, dial_string)
    s.dial_end(4, caller, leg, status)
    end = 10 if status == "ANSWER" else 4
    return s.hangup(end, leg).hangup(end, caller)


@pytest.mark.parametrize(
    ("channel", "context", "dial_string"),
    [
        ("DAHDI/i1/80447654321-2", "from-digital", "g0/80447654321"),
        ("IAX2/provider-5678", "from-trunk", "provider/80447654321"),
        ("PJSIP/7001-00000002", "from-pstn", "80447654321@7001"),  # FreePBX: PJSIP/<number>@<trunk>
    ],
)
@pytest.mark.parametrize("status", ["ANSWER", "NOANSWER"])
def test_outgoing_over_other_trunks(channel: str, context: str, dial_string: str, status: str) -> None:
    leg = Chan(channel, uid(2), LID, "<unknown>", context, "s", "0")
    events = outgoing(leg, dial_string, status).play()
    end = events[-1]
    assert (end.direction, end.phone, end.extension, end.extensions) == ("out", REMOTE, "150", ("150",))
    if status == "ANSWER":
        assert [e.event for e in events] == ["ringing", "answered", "ended"]
        assert (end.answered_by, end.result, end.ring_seconds, end.talk_seconds) == ("150", "answered", 4, 6)
    else:
        assert [e.event for e in events] == ["ringing", "ended"]
        assert (end.answered_by, end.result, end.ring_seconds) == (None, "no_answer", 4)
