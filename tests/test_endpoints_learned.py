"""Trunk or phone by the endpoint, learned over a real AMI link at connect and after `Reload`.

The fake PBX answers the endpoint actions in the shape Asterisk documents (tests/fakes/ami_endpoints.py);
the call is a provider's incoming call whose caller ID is short (`123`), in a context of the admin's own, so
neither a distribution's context nor the caller ID can tell: only the endpoint can.
"""

from __future__ import annotations

import math

from agent.tracking.endpoints import PHONE, TRUNK
from tests.fakes.ami import FakeAmi
from tests.fakes.ami_endpoints import Peer, Pjsip, responders
from tests.test_ami_link import pipeline
from tests.waiting import until

HEAD = (
    b"Asterisk Call Manager/9.0.0\r\n"
    b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 5\r\nLastReload: 5\r\nStatus: Fully Booted\r\n\r\n"
)


TRUNK_UID, PHONE_UID = "1700000000.1", "1700000000.2"


def short_cid_call(context: str = "incoming") -> bytes:
    chan = (
        "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: {ch}\r\nChannelState: {st}\r\nChannelStateDesc: {sd}\r\n"
        "CallerIDNum: {cid}\r\nCallerIDName: <unknown>\r\nConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>"
        "\r\nLanguage: en\r\nAccountCode: \r\nContext: {ctx}\r\nExten: {exten}\r\nPriority: 1\r\nUniqueid: {uid}\r\n"
        "Linkedid: 1700000000.1\r\n\r\n"
    )
    return (
        chan.format(
            ch="PJSIP/provider-00000001", st=4, sd="Ring", cid="123", ctx=context, exten="375173880000", uid=TRUNK_UID
        )
        + chan.format(
            ch="PJSIP/150-00000002", st=0, sd="Down", cid="150", ctx="from-internal", exten="s", uid=PHONE_UID
        )
        + "Event: DialBegin\r\nPrivilege: call,all\r\nChannel: PJSIP/provider-00000001\r\nCallerIDNum: 123\r\n"
        f"Context: {context}\r\nExten: 375173880000\r\nUniqueid: 1700000000.1\r\nLinkedid: 1700000000.1\r\n"
        "DestChannel: PJSIP/150-00000002\r\nDestCallerIDNum: 150\r\nDestUniqueid: 1700000000.2\r\n"
        "DestLinkedid: 1700000000.1\r\nDialString: 150\r\n\r\n"
    ).encode()


OFFICE = [
    Pjsip("150"),
    Pjsip("alice"),  # a phone not named like an extension: its context says so
    Pjsip("provider", context="incoming", identify="203.0.113.5"),  # matched by address
    Pjsip("voip-out", context="incoming", outbound_auths="voip-out-auth"),
    Pjsip("carrier", context="incoming", auths="carrier-in", from_domain="carrier.example.net"),
    Pjsip("gateway", context="incoming", auths="gw"),  # named by an outbound registration
]


async def test_a_learned_trunk_beats_a_short_caller_id() -> None:
    stream = HEAD + short_cid_call()
    sip = [Peer("151"), Peer("sipprov", dynamic=False)]
    answers = responders(OFFICE, {"gw-reg": "gateway"}, sip=sip, iax=[Peer("iaxtrunk", trunk=True), Peer("152")])
    ami = FakeAmi(stream, speed=math.inf, pause_at=len(HEAD), responders=answers)
    async with ami, pipeline(ami) as (pipe, events, health):
        await until(lambda: "endpoints" in pipe.link.health.details, what="endpoints learned")
        kinds = dict(pipe.tracker.env.rules.endpoints.kinds)
        assert kinds == {
            "PJSIP/150": PHONE,
            "PJSIP/alice": PHONE,
            "PJSIP/provider": TRUNK,
            "PJSIP/voip-out": TRUNK,
            "PJSIP/carrier": TRUNK,
            "PJSIP/gateway": TRUNK,
            "SIP/151": PHONE,
            "SIP/sipprov": TRUNK,
            "IAX2/iaxtrunk": TRUNK,
            "IAX2/152": PHONE,
        }
        asked = [a["Action"] for a in ami.actions]
        # details only for endpoints not named like an extension nor named by a registration
        assert sorted(a["Endpoint"] for a in ami.actions if a["Action"] == "PJSIPShowEndpoint") == [
            "alice",
            "carrier",
            "provider",
            "voip-out",
        ]
        assert {"PJSIPShowEndpoints", "PJSIPShowRegistrationsOutbound", "SIPpeers", "IAXpeerlist"} <= set(asked)
        assert (await health.report())["components"]["pbx:office"]["endpoints"]["warnings"] == []
        ami.unpause()
        await until(lambda: len(events) == 1, what="the ringing event")
    ringing = events[0]
    assert (ringing.event, ringing.direction, ringing.phone, ringing.extension) == ("ringing", "in", "123", "150")


async def test_a_refused_action_is_a_warning_on_health_and_contexts_still_tell() -> None:
    stream = HEAD + short_cid_call("from-pstn")  # FreePBX's trunk context
    refused = ("PJSIPShowEndpoints", "SIPpeers", "IAXpeerlist")
    ami = FakeAmi(stream, speed=math.inf, pause_at=len(HEAD), responders=responders(OFFICE), refuse=refused)
    async with ami, pipeline(ami) as (pipe, events, health):
        await until(lambda: "endpoints" in pipe.link.health.details, what="endpoints asked")
        learned = (await health.report())["components"]["pbx:office"]["endpoints"]
        assert learned["refused"] == list(refused)
        assert len(learned["warnings"]) == 3
        assert "PJSIPShowEndpoints" in learned["warnings"][0] and "write" in learned["warnings"][0]
        assert not pipe.tracker.env.rules.endpoints.kinds
        ami.unpause()
        await until(lambda: len(events) == 1, what="the ringing event")
    assert (events[0].direction, events[0].phone) == ("in", "123")


async def test_a_reload_learns_again() -> None:
    office = [Pjsip("150")]
    stream = HEAD
    ami = FakeAmi(stream, speed=math.inf, responders=responders(office))
    async with ami, pipeline(ami) as (pipe, _events, _health):
        await until(lambda: "endpoints" in pipe.link.health.details, what="endpoints learned")
        assert pipe.tracker.env.rules.endpoints.kind_of("PJSIP/provider-00000001") is None
        ami.responders |= {k.lower(): v for k, v in responders([*office, OFFICE[2]]).items()}
        asked = len(ami.actions)
        await ami.inject(b"Event: Reload\r\nPrivilege: system,all\r\nModule: res_pjsip.so\r\nStatus: 2\r\n\r\n")
        await until(lambda: len(ami.actions) > asked, what="asked again")
        await until(
            lambda: pipe.tracker.env.rules.endpoints.kind_of("PJSIP/provider-00000001") == TRUNK,
            what="the new trunk learned",
        )
