"""A ring group nobody answered: it keeps the number dialled and every member that rang, and is no member's.

The AMI shapes are those of `p_l_ring_group` (Dial(PJSIP/150&PJSIP/151&PJSIP/152,20) from the trunk channel),
with every member ending `DialEnd NOANSWER` when the Dial times out.
"""

from __future__ import annotations

import pytest

from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from agent.tracking.tracker import CallTracker

LINKED = "1700000000.1"


def chan(uid: str, channel: str, cid: str, context: str, exten: str) -> dict[str, str]:
    return {
        "Event": "Newchannel",
        "Channel": channel,
        "Uniqueid": uid,
        "Linkedid": LINKED,
        "CallerIDNum": cid,
        "Context": context,
        "Exten": exten,
    }


def group_call(caller: tuple[str, str, str, str], before_dial: list[dict[str, str]]) -> list[dict[str, str]]:
    channel, cid, context, exten = caller
    msgs = [chan(LINKED, channel, cid, context, exten), *before_dial]
    members = [("150", "1700000000.2"), ("151", "1700000000.3"), ("152", "1700000000.4")]
    for ext, uid in members:
        msgs.append(chan(uid, f"PJSIP/{ext}-0000000{uid[-1]}", ext, "from-internal", "s"))
    for ext, uid in members:
        msgs.append(
            {
                "Event": "DialBegin",
                "Channel": channel,
                "Uniqueid": LINKED,
                "Linkedid": LINKED,
                "CallerIDNum": cid,
                "Context": context,
                "Exten": exten,
                "DestChannel": f"PJSIP/{ext}-0000000{uid[-1]}",
                "DestUniqueid": uid,
                "DestLinkedid": LINKED,
                "DialString": ext,
            }
        )
    for ext, uid in members:
        dial_end = {"Event": "DialEnd", "Channel": channel, "Uniqueid": LINKED, "Linkedid": LINKED}
        msgs.append(dial_end | {"DestChannel": f"PJSIP/{ext}-0000000{uid[-1]}", "DestUniqueid": uid})
        msgs[-1]["DialStatus"] = "NOANSWER"
    for _ext, uid in members:
        msgs.append({"Event": "Hangup", "Uniqueid": uid, "Linkedid": LINKED, "Cause": "26"})
    msgs.append({"Event": "Hangup", "Uniqueid": LINKED, "Linkedid": LINKED, "Cause": "16"})
    return msgs


def ended(msgs: list[dict[str, str]]) -> CallEvent:
    events = CallTracker(ChannelRules(region="BY"), "0001").feed_many(msgs)
    [end] = [e for e in events if e.event == "ended"]
    return end


TRUNK = ("PJSIP/provider-00000000", "+375445550011", "from-trunk", "375173880001")


def varset(name: str, value: str) -> dict[str, str]:
    return {"Event": "VarSet", "Uniqueid": LINKED, "Linkedid": LINKED, "Variable": name, "Value": value}


def test_an_unanswered_ring_group_is_no_members_call() -> None:
    end = ended(group_call(TRUNK, []))
    assert (end.direction, end.result, end.answered_by) == ("in", "no_answer", None)
    assert end.did == "375173880001"  # the number that was dialled
    assert end.extensions == ("150", "151", "152")  # every member that rang
    assert end.extension is None  # not "the last one dialled" (152)


@pytest.mark.parametrize(
    ("variables", "owner"),
    [
        ([varset("REDIRECT_EXTEN", "151"), varset("REDIRECT_STATUS", "FOUND")], "151"),  # the CRM's manager
        ([varset("REDIRECT_EXTEN", "151"), varset("REDIRECT_SOURCE", "crm")], "151"),
        ([varset("REDIRECT_EXTEN", "151"), varset("REDIRECT_SOURCE", "history")], None),  # not the CRM's
        ([varset("REDIRECT_EXTEN", "")], None),
    ],
)
def test_the_crms_responsible_manager_owns_the_missed_call(variables: list[dict[str, str]], owner: str | None) -> None:
    assert ended(group_call(TRUNK, variables)).extension == owner


def test_an_internal_call_to_a_group_keeps_the_group_number() -> None:
    end = ended(group_call(("PJSIP/153-00000009", "153", "from-internal", "600"), []))
    assert (end.direction, end.phone, end.extension) == ("internal", "153", None)
    assert end.extra["dialled"] == "600"
