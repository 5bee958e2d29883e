"""Reconnects: the stream drops mid-call, Asterisk's CoreShowChannels list brings the tracker back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from agent.ingest.frame import AmiFrameParser, AmiMessage
from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from agent.tracking.tracker import CallTracker
from tests.recordings import ami, timing

BASE = datetime(2026, 11, 24, tzinfo=UTC)
_KEEP = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "ConnectedLineNum",
    "Context",
    "Exten",
    "Uniqueid",
    "Linkedid",
)


def messages(name: str) -> list[tuple[AmiMessage, datetime]]:
    data, parser, out = ami(name), AmiFrameParser(), []
    for entry in timing(name):
        for msg in parser.feed(data[entry.start : entry.end]):
            out.append((msg, BASE + timedelta(seconds=entry.seconds)))
    return out


def core_show_channels(msgs: list[tuple[AmiMessage, datetime]]) -> list[Mapping[str, str]]:
    """What `CoreShowChannels` would list after `msgs`: built from those events alone."""
    live: dict[str, dict[str, str]] = {}
    for msg, _ in msgs:
        uid, event = msg.get("Uniqueid", ""), msg.get("Event")
        if event == "Newchannel":
            live[uid] = {k: msg.get(k, "") for k in _KEEP} | {"BridgeId": "", "Application": ""}
        elif event == "Hangup":
            live.pop(uid, None)
        elif uid in live:
            live[uid].update({k: msg[k] for k in _KEEP if k in msg})
            if event == "BridgeEnter":
                live[uid]["BridgeId"] = msg["BridgeUniqueid"]
            elif event == "BridgeLeave":
                live[uid]["BridgeId"] = ""
            elif event == "Newexten":
                live[uid]["Application"] = msg["Application"]
    return [{"Event": "CoreShowChannel", "Duration": "00:00:05", **row} for row in live.values()]


def feed(t: CallTracker, msgs: list[tuple[AmiMessage, datetime]]) -> list[CallEvent]:
    out: list[CallEvent] = []
    for msg, at in msgs:
        out += t.feed_many([msg], at)
    return out


def index_of(msgs: list[tuple[AmiMessage, datetime]], event: str, **match: str) -> int:
    for i, (msg, _) in enumerate(msgs):
        if msg.get("Event") == event and all(msg.get(k) == v for k, v in match.items()):
            return i
    raise LookupError(event)


def tracker() -> CallTracker:
    return CallTracker(ChannelRules(region="BY"), "100")


@pytest.mark.parametrize("name", ["p_a_incoming_answered", "a_incoming_answered"])
def test_answer_lost_in_the_gap_is_found_and_call_ends_once(name: str) -> None:
    msgs = messages(name)
    cut = index_of(msgs, "DialEnd", DialStatus="ANSWER")
    back = index_of(msgs, "BridgeEnter") + 2
    t = tracker()
    before = feed(t, msgs[:cut])
    assert [e.event for e in before] == ["ringing"]
    at = msgs[back][1]
    healed = t.reconcile(core_show_channels(msgs[:back]), at)
    assert [(e.event, e.extension, e.at) for e in healed] == [("answered", "150", at)]
    after = feed(t, msgs[back:])
    ends = [e for e in after if e.event == "ended"]
    assert len(ends) == 1 and [e.event for e in after] == ["ended"]
    end = ends[0]
    assert (end.direction, end.answered_by, end.result) == ("in", "150", "answered")
    assert end.phone == "+375291234567" and end.did == "375173880000"
    assert end.ring_seconds is None and end.talk_seconds is None  # answer time unknown
    assert t.live_calls() == 0 and t.live_channels() == 0


@pytest.mark.parametrize(
    "name", ["p_a_incoming_answered", "a_incoming_answered", "p_d_outgoing_answered", "i_queue_second_member"]
)
def test_restart_mid_call_rebuilds_it_silently_and_it_ends_once(name: str) -> None:
    msgs = messages(name)
    full = feed(tracker(), msgs)
    expected = next(e for e in full if e.event == "ended")
    mid = index_of(msgs, "BridgeEnter") + 2
    t = tracker()  # a new process: knows nothing
    assert t.reconcile(core_show_channels(msgs[:mid]), msgs[mid][1]) == []
    assert t.live_calls() == 1
    after = feed(t, msgs[mid:])
    assert [e.event for e in after] == ["ended"]
    end = after[0]
    for key in ("call_id", "direction", "phone", "answered_by", "result", "extension"):
        assert getattr(end, key) == getattr(expected, key), key
    assert end.ended_at == expected.ended_at
    assert end.started_at is not None
    assert t.live_calls() == 0 and t.live_channels() == 0


def test_call_that_vanished_while_disconnected_is_closed_once() -> None:
    msgs = messages("p_a_incoming_answered")
    mid = index_of(msgs, "BridgeEnter") + 2
    t = tracker()
    feed(t, msgs[:mid])
    at = BASE + timedelta(minutes=5)
    closed = t.reconcile([], at)
    assert len(closed) == 1
    end = closed[0]
    assert (end.event, end.answered_by, end.result, end.at) == ("ended", "150", "answered", at)
    assert end.ended_at is None and end.talk_seconds is None  # the end time is not known
    assert end.ring_seconds is not None and abs(end.ring_seconds - 3) < 0.5
    assert end.extra["closed_by"] == "reconcile"
    assert t.live_calls() == 0
    assert t.reconcile([], at) == []
    # the rest of the old stream (replayed by mistake) cannot end it again
    assert feed(t, msgs[mid:]) == []


def test_reconcile_keeps_calls_that_are_still_live() -> None:
    msgs = messages("p_l_ring_group")
    mid = index_of(msgs, "DialBegin") + 3  # all three phones ringing
    t = tracker()
    feed(t, msgs[:mid])
    rows: list[Mapping[str, str]] = list(core_show_channels(msgs[:mid]))
    assert t.reconcile(rows, msgs[mid][1]) == []
    rest = feed(t, msgs[mid:])
    end = [e for e in rest if e.event == "ended"]
    assert len(end) == 1 and end[0].answered_by == "151"
    assert end[0].extensions == ("150", "151", "152")
