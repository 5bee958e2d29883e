"""Channel rules and number normalisation."""

from __future__ import annotations

import pytest

from agent.tracking.channels import ChannelRules
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


def test_trunk_context_beats_a_short_caller_id() -> None:
    from agent.tracking.tracker import CallTracker

    base = {"Linkedid": "1.1"}
    msgs = [
        {
            "Event": "Newchannel",
            "Channel": "PJSIP/provider-00000001",
            "Uniqueid": "1.1",
            "CallerIDNum": "112",
            "Context": "from-trunk",
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
    for rules, direction in ((ChannelRules(), "internal"), (ChannelRules(trunk_contexts=("from-trunk",)), "in")):
        t = CallTracker(rules, "1")
        events = [e for m in msgs for e in t.feed_many([m], None)]
        assert [(e.event, e.direction) for e in events] == [("ringing", direction)]
