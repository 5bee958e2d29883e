"""Every recording as an AMI user with fewer `read` classes would get it: the README's outcome must still hold.

manager.conf's `read` decides which event classes a session gets; an event comes only when the user may read
its class, which the event's `Privilege:` header names (`Privilege: dialplan,all`). The recordings were made
with every class the tracker could use; a PBX whose AMI user lacks some of them is common:

- `dialplan` (`Newexten`, `VarSet`): more than half of all messages, often left out for load. Only what lives
  in dialplan variables may go: the recording's file name (`MIXMONITOR_FILENAME`) becomes null, never a
  guess, and smart redirect's named manager (`REDIRECT_EXTEN`) is unknown.
- `agent` (app_queue's `QueueCallerJoin`, `AgentCalled`, `AgentConnect`, `AgentRingNoAnswer`, …): the queue's
  own `DialBegin`/`DialEnd` (class `call`) still say who rang and who answered.
- `cdr` (`Cdr`) and `reporting` (`RTCPSent`, …): the tracker needs neither.
"""

from __future__ import annotations

import re

import pytest

from agent.repair.replay import TimingEntry, replay
from agent.tracking.channels import ChannelRules
from agent.tracking.tracker import CallTracker
from tests.recordings import NAMES, ami, frames, timing
from tests.test_calls_recordings import CASES, counts, near, the_end

_CLASS = re.compile(rb"\r\nPrivilege: ([a-z]+)")
LACKING = [("dialplan",), ("agent",), ("cdr",), ("reporting",), ("dialplan", "agent", "cdr", "reporting")]


def without_classes(name: str, classes: tuple[str, ...]) -> tuple[bytes, list[TimingEntry]]:
    """The recording and its timing without the messages of `classes` (the banner and responses stay)."""
    data, entries = ami(name), timing(name)
    drop = {c.encode() for c in classes}
    out = bytearray()
    kept: list[TimingEntry] = []
    for entry, frame in zip(entries, frames(data, entries), strict=True):
        m = _CLASS.search(frame)
        if m is not None and m.group(1) in drop:
            continue
        kept.append(TimingEntry(entry.seconds, len(out), len(out) + len(frame), entry.name))
        out += frame
    return bytes(out), kept


# test_calls_recordings.test_blind_transfer / test_attended_transfer; x3 is `a` with Timestamp headers
TRANSFERS = {
    "g_blind_transfer": ["ringing", "answered", "transferred", "ringing", "answered", "ended"],
    "h_attended_transfer": ["ringing", "answered", "ringing", "transferred", "answered", "ended"],
}


def test_the_filter_removes_what_it_says() -> None:
    data, entries = without_classes("p_i_queue_second_member", ("dialplan", "agent"))
    assert b"Event: VarSet" not in data and b"Event: AgentConnect" not in data and b"Event: Newexten" not in data
    assert b"Event: DialEnd" in data and b"Event: Cdr" in data
    assert entries[-1].end == len(data)


@pytest.mark.parametrize("classes", LACKING, ids=["+".join(c) for c in LACKING])
@pytest.mark.parametrize("name", NAMES)
def test_outcome_without_classes(name: str, classes: tuple[str, ...]) -> None:
    data, entries = without_classes(name, classes)
    events = replay(data, entries, CallTracker(ChannelRules(region="BY"), "100", "office"))
    if name in TRANSFERS:
        assert [e.event for e in events] == TRANSFERS[name]
        end = the_end(events)
        assert (end.direction, end.answered_by, end.result, end.extensions) == ("in", "151", "answered", ("150", "151"))
        assert [leg["extension"] for leg in end.extra["legs"]] == ["150", "151"]
        return
    fields, expected_counts, ring, talk = CASES[name.replace("x3_timestamped_", "a_")]
    end = the_end(events)
    for key, value in fields.items():
        if key == "recording" and "dialplan" in classes:
            value = None  # the file name is only in MIXMONITOR_FILENAME
        assert getattr(end, key) == value, (key, end)
    assert counts(events) == expected_counts
    assert {e.call_id for e in events} == {end.call_id}
    if ring is not None and ring < 1:
        assert end.ring_seconds is not None and end.ring_seconds < ring
    else:
        assert near(end.ring_seconds, ring), end.ring_seconds
    assert near(end.talk_seconds, talk), end.talk_seconds
