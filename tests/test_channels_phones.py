"""Channel rules and number normalisation."""

from __future__ import annotations

import pytest

from agent.tracking.channels import ChannelRules
from agent.tracking.endpoints import PHONE, TRUNK, Endpoints, Kind
from agent.tracking.phones import normalise

RULES = ChannelRules()


@pytest.mark.parametrize(
    ("channel", "ext"),
    [
        ("PJSIP/150-0000000c", "150"),
        ("SIP/151-0000ab12", "151"),
        ("IAX2/152-00000001", "152"),
        ("Local/150@agents-00000001;1", "150"),
        ("Local/151@from-internal-0000000a;2", "151"),
        ("PJSIP/provider-0000000b", None),
        ("PJSIP/my-trunk-00000001", None),
        ("Local/375173880000@from-trunk-00000000;2", None),
        ("Local/+375447654321@fake-trunk-00000007;1", None),
        ("PJSIP/1234567-00000001", None),  # longer than an extension
        ("", None),
    ],
)
def test_phone_extension(channel: str, ext: str | None) -> None:
    assert RULES.phone_extension(channel) == ext


def test_rules_are_configurable_and_plain() -> None:
    rules = ChannelRules(
        phone_channels=(r"^Custom/(?P<ext>\d+)$",),
        internal_number=r"^\d{3}$",
        trunk_contexts=("from-trunk",),
        region="BY",
    )
    assert rules.phone_extension("Custom/150") == "150"
    assert rules.phone_extension("PJSIP/150-00000001") is None
    assert rules.is_trunk_context("from-trunk") and not rules.is_trunk_context("from-internal")
    assert rules == ChannelRules(
        phone_channels=(r"^Custom/(?P<ext>\d+)$",),
        internal_number=r"^\d{3}$",
        trunk_contexts=("from-trunk",),
        region="BY",
    )


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+375291234567", None, "+375291234567"),
        ("375291234567", "BY", "+375291234567"),
        ("80291234567", "BY", "+375291234567"),
        ("8 (029) 123-45-67", "BY", "+375291234567"),
        ("00375291234567", None, "+375291234567"),
        ("150", "BY", "150"),
        ("375291234567", None, "375291234567"),
    ],
)
def test_normalise(raw: str, region: str | None, e164: str) -> None:
    assert normalise(raw, region) == e164


def short_cid_trunk_call(context: str) -> list[dict[str, str]]:
    """A provider's incoming call whose caller ID is short (`112`), ringing phone 150."""
    base = {"Linkedid": "1.1"}
    return [
        {
            "Event": "Newchannel",
            "Channel": "PJSIP/provider-00000001",
            "Uniqueid": "1.1",
            "CallerIDNum": "112",
            "Context": context,
            "Exten": "375173880000",
            **base,
        },
        {
            "Event": "Newchannel",
            "Channel": "PJSIP/150-00000002",
            "Uniqueid": "1.2",
            "CallerIDNum": "150",
            "Context": "from-internal",
            "Exten": "s",
            **base,
        },
        {
            "Event": "DialBegin",
            "Channel": "PJSIP/provider-00000001",
            "Uniqueid": "1.1",
            "CallerIDNum": "112",
            "DestChannel": "PJSIP/150-00000002",
            "DestUniqueid": "1.2",
            **base,
        },
    ]


@pytest.mark.parametrize(
    ("context", "rules", "direction"),
    [
        # FreePBX / Issabel / the sample dialplan: their trunk contexts need no configuration
        ("from-trunk", ChannelRules(), "in"),
        ("from-pstn", ChannelRules(), "in"),
        ("from-trunk-pjsip-provider", ChannelRules(), "in"),
        # a context of the admin's own: the endpoint learned over AMI decides
        ("incoming", ChannelRules(endpoints=Endpoints({"PJSIP/provider": TRUNK})), "in"),
        # ... or the operator's override
        ("incoming", ChannelRules(trunk_contexts=("incoming",)), "in"),
        # nothing tells: the caller ID is all there is
        ("incoming", ChannelRules(), "internal"),
    ],
)
def test_the_endpoint_beats_a_short_caller_id(context: str, rules: ChannelRules, direction: str) -> None:
    from agent.tracking.tracker import CallTracker

    t = CallTracker(rules, "1")
    events = [e for m in short_cid_trunk_call(context) for e in t.feed_many([m], None)]
    assert [(e.event, e.direction) for e in events] == [("ringing", direction)]
    if direction == "in":
        assert events[0].phone == "112" and events[0].extension == "150"


@pytest.mark.parametrize(
    ("channel", "cid", "context", "endpoints", "identity"),
    [
        ("PJSIP/150-00000001", "150", "from-internal", {}, "150"),
        ("PJSIP/150-00000001", "+375291234567", "from-internal", {}, "150"),  # the endpoint, not the caller ID
        ("Local/151@from-internal-0000000a;2", "150", "from-internal", {}, "150"),  # Local: names its target
        ("Local/375173880000@from-trunk-00000000;2", "123", "from-trunk", {}, None),
        ("PJSIP/alice-00000001", "150", "from-internal", {"PJSIP/alice": PHONE}, "150"),
        ("PJSIP/alice-00000001", "150", "custom", {}, "150"),  # nothing known: the caller ID
        ("SIP/provider-00000001", "123", "from-trunk", {}, None),
        ("SIP/provider-00000001", "123", "custom", {"SIP/provider": TRUNK}, None),
        ("IAX2/100-00000001", "100", "custom", {"IAX2/100": TRUNK}, None),  # a trunk named like an extension
        ("PJSIP/7001-00000001", "+375291234567", "from-pstn", {}, None),  # ... in a distribution's trunk context
        ("PJSIP/7001-00000001", "7001", "from-pstn", {"PJSIP/7001": PHONE}, "7001"),  # the PBX said phone
        ("DAHDI/1-1", "1234", "from-analog", {}, None),  # FreePBX's FXO port, a short caller ID
        ("DAHDI/i1/1234-1", "1234", "from-digital", {}, None),  # FreePBX's ISDN span
        ("DAHDI/3-1", "153", "from-internal", {}, "153"),  # an FXS port: a phone, known by its caller ID
    ],
)
def test_identity(channel: str, cid: str, context: str, endpoints: dict[str, Kind], identity: str | None) -> None:
    rules = ChannelRules(endpoints=Endpoints(endpoints))
    assert rules.identity(channel, cid, context) == identity


def test_a_learned_trunk_is_never_a_phone_channel() -> None:
    assert ChannelRules().phone_extension("PJSIP/100-00000001") == "100"
    rules = ChannelRules(endpoints=Endpoints({"PJSIP/100": TRUNK}))
    assert rules.phone_extension("PJSIP/100-00000001") is None


@pytest.mark.parametrize(
    ("channel", "context", "endpoints", "ext"),
    [
        ("PJSIP/150-00000001", "from-internal", {}, "150"),
        ("PJSIP/7001-00000002", "from-pstn", {}, None),  # a dialled trunk leg carries its endpoint's context
        ("PJSIP/7001-00000002", "from-trunk", {"PJSIP/7001": PHONE}, "7001"),
        ("PJSIP/7001-00000002", "incoming", {}, "7001"),  # nothing says trunk ...
        ("Local/151@from-queue-00000001;1", "from-queue", {}, "151"),
        ("Local/151@from-trunk-00000001;1", "from-trunk", {}, "151"),  # a Local channel's context is its target's
    ],
)
def test_dialled_extension(channel: str, context: str, endpoints: dict[str, Kind], ext: str | None) -> None:
    assert ChannelRules(endpoints=Endpoints(endpoints)).dialled_extension(channel, context) == ext
    trunk = ChannelRules(trunk_contexts=("incoming",))  # ... unless the operator's trunk_contexts does
    assert trunk.dialled_extension("PJSIP/7001-00000002", "incoming") is None
