"""The tracker under stress: interleaving, leaks, garbage, determinism, unknown events."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from agent.ingest.frame import AmiFrameParser
from agent.repair.replay import replay
from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from agent.tracking.tracker import CallTracker
from tests.recordings import NAMES, ami, frames, play, rewrite_ids, timing


def tracker() -> CallTracker:
    return CallTracker(ChannelRules(region="BY"), "100")


def strip_times(events: list[CallEvent]) -> list[tuple[object, ...]]:
    return [
        (
            e.event,
            e.call_id,
            e.direction,
            e.phone,
            e.extension,
            e.answered_by,
            e.result,
            e.extensions,
            e.from_extension,
            e.to_extension,
        )
        for e in events
    ]


@pytest.mark.parametrize("name", NAMES)
def test_same_bytes_same_events_and_nothing_left(name: str) -> None:
    t1, t2 = tracker(), tracker()
    first = play(name, tracker=t1)
    assert first == play(name, tracker=t2)
    assert t1.live_calls() == 0 and t1.live_channels() == 0


def test_chunking_does_not_change_events() -> None:
    name = "x3_timestamped_incoming_answered"  # times from headers: independent of reads
    data = ami(name)
    whole = replay(data, None, tracker())
    t = tracker()
    p = AmiFrameParser()
    small: list[CallEvent] = []
    for i in range(0, len(data), 13):
        for msg in p.feed(data[i : i + 13]):
            small += t.feed_many([msg], None)
    assert small == whole and len(whole) == 3


def test_two_calls_interleaved_stay_separate() -> None:
    names = ("a_incoming_answered", "p_l_ring_group")
    streams = []
    for n, name in enumerate(names):
        # same epoch, distinct counters; without the banner
        streams.append([rewrite_ids(f, offset=1000 * n) for f in frames(ami(name), timing(name))[1:]])
    alone = [replay(b"".join(s), None, tracker()) for s in streams]
    mixed = bytearray()
    for i in range(max(len(s) for s in streams)):
        for s in streams:
            if i < len(s):
                mixed += s[i]
    t = tracker()
    together = replay(bytes(mixed), None, t)
    assert t.live_calls() == 0
    for events in alone:
        call_id = events[0].call_id
        assert strip_times([e for e in together if e.call_id == call_id]) == strip_times(events)
    assert len({e.call_id for e in together}) == 2
    ends = {e.call_id: e for e in together if e.event == "ended"}
    assert sorted(str(e.answered_by) for e in ends.values()) == ["150", "151"]


def synthetic_call(n: int, at: datetime) -> list[dict[str, str]]:
    lid = f"1700000000.{n * 10}"
    trunk, phone = lid, f"1700000000.{n * 10 + 1}"
    ext = str(100 + n % 50)
    common = {"Linkedid": lid}
    mode = n % 4  # answered, no answer, busy, caller gives up
    status = ("ANSWER", "NOANSWER", "BUSY", "CANCEL")[mode]
    msgs = [
        {
            "Event": "Newchannel",
            "Channel": f"PJSIP/provider-{n:08x}",
            "Uniqueid": trunk,
            "CallerIDNum": "+375291234567",
            "Context": "from-trunk",
            "Exten": "375173880000",
            **common,
        },
        {"Event": "VarSet", "Uniqueid": trunk, "Variable": "X", "Value": "1", **common},
        {
            "Event": "Newchannel",
            "Channel": f"PJSIP/{ext}-{n:08x}",
            "Uniqueid": phone,
            "CallerIDNum": ext,
            "Context": "from-internal",
            "Exten": "s",
            **common,
        },
        {
            "Event": "DialBegin",
            "Channel": f"PJSIP/provider-{n:08x}",
            "Uniqueid": trunk,
            "CallerIDNum": "+375291234567",
            "DestChannel": f"PJSIP/{ext}-{n:08x}",
            "DestUniqueid": phone,
            "DialString": ext,
            **common,
        },
        {
            "Event": "DialEnd",
            "Channel": f"PJSIP/provider-{n:08x}",
            "Uniqueid": trunk,
            "DestChannel": f"PJSIP/{ext}-{n:08x}",
            "DestUniqueid": phone,
            "DialStatus": status,
            **common,
        },
        {"Event": "Hangup", "Uniqueid": phone, "Channel": f"PJSIP/{ext}-{n:08x}", **common},
        {"Event": "Hangup", "Uniqueid": trunk, "Channel": f"PJSIP/provider-{n:08x}", **common},
    ]
    for k, m in enumerate(msgs):
        m["Timestamp"] = f"{int(at.timestamp()) + k}.000000"
    return msgs


def test_100k_calls_leave_nothing_behind() -> None:
    t = tracker()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    results: Counter[str | None] = Counter()
    window: list[list[dict[str, str]]] = []
    for n in range(100_000):
        window.append(synthetic_call(n, at))
        if len(window) == 5:  # five calls in flight at a time, their events interleaved
            for step in range(7):
                for call in window:
                    for e in t.feed_many([call[step]], None):
                        if e.event == "ended":
                            results[e.result] += 1
            window.clear()
    assert t.live_calls() == 0 and t.live_channels() == 0
    assert results == {"answered": 25_000, "no_answer": 25_000, "busy": 25_000, "cancelled": 25_000}


def test_unknown_events_and_unknown_channels_change_nothing() -> None:
    t = tracker()
    assert t.feed_many([{"Event": "Hangup", "Uniqueid": "1.1", "Linkedid": "1.1"}], None) == []
    assert (
        t.feed_many(
            [
                {
                    "Event": "DialEnd",
                    "Uniqueid": "1.1",
                    "Linkedid": "1.1",
                    "DestUniqueid": "1.2",
                    "DialStatus": "ANSWER",
                    "Channel": "x",
                }
            ],
            None,
        )
        == []
    )
    assert t.feed_many([{"Event": "BlindTransfer", "TransfereeLinkedid": "9.9"}], None) == []
    assert t.feed_many([{"Event": "SomethingNew", "Linkedid": "1.1"}], None) == []
    assert t.feed_many([{"Response": "Success"}], None) == []
    assert t.feed_many([{"Banner": "Asterisk Call Manager/11.0.0"}], None) == []
    assert t.live_calls() == 0
    # and a real call around them still comes out right
    events = play("p_a_incoming_answered", tracker=t)
    assert [e.event for e in events] == ["ringing", "answered", "ended"]


def test_hangup_for_unknown_channel_mid_call_does_nothing() -> None:
    name = "p_a_incoming_answered"
    parts = frames(ami(name), timing(name))
    stray = (
        b"Event: Hangup\r\nChannel: PJSIP/999-000000ff\r\nUniqueid: 1795481440.999\r\n"
        b"Linkedid: 1795481440.0\r\nCause: 16\r\n\r\n"
    )
    data = b"".join(parts[:10]) + stray + b"".join(parts[10:])
    assert strip_times(replay(data, None, tracker())) == strip_times(play(name, with_timing=False))


def test_garbage_between_frames_is_skipped() -> None:
    name = "a_incoming_answered"
    parts = frames(ami(name), timing(name))
    garbage = [
        b"no colon in this frame at all\r\n\r\n",
        bytes(range(1, 250)).replace(b"\n", b"").replace(b"\r", b"") + b"\r\n\r\n",
        b"Event: DialBegin\r\nthis line is junk\r\n\r\n",
        b"Junk: " + b"y" * 1_000_000 + b"\r\n\r\n",  # 1 MB line: a frame over the cap
        b"Event: Hangup\r\nUniqueid: \xff\xfe\r\nLinkedid: \r\n\r\n",
    ]
    mixed = bytearray()
    for i, part in enumerate(parts):
        mixed += part
        if i and i % 8 == 0:
            mixed += garbage[(i // 8) % len(garbage)]
    p = AmiFrameParser()
    t = tracker()
    events = replay(bytes(mixed), None, t, parser=p)
    assert strip_times(events) == strip_times(play(name, with_timing=False))
    assert p.malformed >= 4 and t.live_calls() == 0


def test_time_comes_from_received_at_when_no_header() -> None:
    t = tracker()
    base = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    msgs = synthetic_call(4, base)  # mode 0: answered
    for m in msgs:
        del m["Timestamp"]
    out: list[CallEvent] = []
    for k, m in enumerate(msgs):
        out += t.feed_many([m], base + timedelta(seconds=k))
    end = out[-1]
    assert end.started_at == base and end.ended_at == base + timedelta(seconds=6)
    assert end.ring_seconds == 4 and end.talk_seconds == 1
