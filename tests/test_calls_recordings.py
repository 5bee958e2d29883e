"""Each real recording through the production parser and tracker, against the README's outcome."""

from __future__ import annotations

from typing import Any

import pytest

from agent.tracking.event import CallEvent
from tests.recordings import play

CUSTOMER_A = "+375291234567"
UNKNOWN = "+375445550011"
REMOTE = "+375447654321"
MOBILE_150 = "+375296660150"
DID = "375173880000"
TOL = 0.5

# name: (ended fields, (ringing, answered, ended) counts, ring s, talk s)
CASES: dict[str, tuple[dict[str, Any], tuple[int, int, int], float | None, float | None]] = {
    "a_incoming_answered": (
        dict(
            direction="in",
            phone=CUSTOMER_A,
            did=DID,
            extension="150",
            answered_by="150",
            result="answered",
            extensions=("150",),
        ),
        (1, 1, 1),
        3,
        8,
    ),
    "b_incoming_missed": (
        dict(
            direction="in",
            phone=CUSTOMER_A,
            did=DID,
            extension="150",
            answered_by=None,
            result="no_answer",
            extensions=("150",),
        ),
        (1, 0, 1),
        20,
        0,
    ),
    "c_incoming_busy": (
        dict(
            direction="in",
            phone=CUSTOMER_A,
            did=DID,
            extension="150",
            answered_by=None,
            result="busy",
            extensions=("150",),
        ),
        (1, 0, 1),
        0.1,
        0,
    ),
    "d_outgoing_answered": (
        dict(
            direction="out",
            phone=REMOTE,
            did=None,
            extension="150",
            answered_by="150",
            result="answered",
            extensions=("150",),
        ),
        (1, 1, 1),
        4,
        7,
    ),
    "e_outgoing_noanswer": (
        dict(
            direction="out",
            phone=REMOTE,
            did=None,
            extension="150",
            answered_by=None,
            result="no_answer",
            extensions=("150",),
        ),
        (1, 0, 1),
        30,
        0,
    ),
    "f_internal_150_to_151": (
        dict(
            direction="internal",
            phone="150",
            did=None,
            extension="151",
            answered_by="151",
            result="answered",
            extensions=("151",),
        ),
        (1, 1, 1),
        2,
        5.5,
    ),
    "i_queue_second_member": (
        dict(
            direction="in",
            phone=UNKNOWN,
            did=DID,
            extension="152",
            answered_by="152",
            result="answered",
            extensions=("151", "152"),
        ),
        (2, 1, 1),
        9,
        10,
    ),
    "x1_agi_down_fallback_queue": (
        dict(
            direction="in",
            phone=CUSTOMER_A,
            did=DID,
            extension="151",
            answered_by="151",
            result="answered",
            extensions=("151",),
        ),
        (1, 1, 1),
        2,
        6,
    ),
    "x2_click_to_call": (
        dict(
            direction="out",
            phone=REMOTE,
            did=None,
            extension="150",
            answered_by="150",
            result="answered",
            extensions=("150",),
        ),
        (1, 1, 1),
        5,
        6.5,
    ),
    "p_a_incoming_answered": (
        dict(
            direction="in",
            phone=CUSTOMER_A,
            did=DID,
            extension="150",
            answered_by="150",
            result="answered",
            extensions=("150",),
            recording=None,
        ),
        (1, 1, 1),
        3,
        8,
    ),
    "p_b_incoming_missed": (
        dict(
            direction="in",
            phone=CUSTOMER_A,
            did=DID,
            extension="150",
            answered_by=None,
            result="no_answer",
            extensions=("150",),
        ),
        (1, 0, 1),
        20,
        0,
    ),
    "p_c_incoming_busy": (
        dict(
            direction="in",
            phone=CUSTOMER_A,
            did=DID,
            extension="150",
            answered_by=None,
            result="busy",
            extensions=("150",),
        ),
        (1, 0, 1),
        0.01,
        0,
    ),
    "p_d_outgoing_answered": (
        dict(
            direction="out",
            phone=REMOTE,
            did=None,
            extension="150",
            answered_by="150",
            result="answered",
            extensions=("150",),
        ),
        (1, 1, 1),
        4,
        7,
    ),
    "p_i_queue_second_member": (
        dict(
            direction="in",
            phone=UNKNOWN,
            did=DID,
            extension="152",
            answered_by="152",
            result="answered",
            extensions=("151", "152"),
        ),
        (2, 1, 1),
        9,
        10,
    ),
    "p_l_ring_group": (
        dict(
            direction="in",
            phone=UNKNOWN,
            did="375173880001",
            extension="151",
            answered_by="151",
            result="answered",
            extensions=("150", "151", "152"),
        ),
        (3, 1, 1),
        4,
        6,
    ),
    "p_n_ivr_then_missed": (
        dict(
            direction="in",
            phone=UNKNOWN,
            did="375173880002",
            extension="150",
            answered_by=None,
            result="no_answer",
            extensions=("150",),
        ),
        (1, 0, 1),
        13.4,
        0,
    ),
    "p_o_recorded_call": (
        dict(
            direction="in",
            phone=CUSTOMER_A,
            did="375173880003",
            extension="150",
            answered_by="150",
            result="answered",
            extensions=("150",),
            recording="/var/spool/asterisk/monitor/in-375173880003-+375291234567-20261124-005922-1795481962.0.wav",
        ),
        (1, 1, 1),
        3,
        8,
    ),
    # 151 picks up 150's ringing call: one call, answered by the picker; 150 only rang
    "p_m_pickup": (
        dict(
            direction="in",
            phone=CUSTOMER_A,
            did=DID,
            extension="151",
            answered_by="151",
            result="answered",
            extensions=("150", "151"),
            forwarded_to=None,
        ),
        (1, 1, 1),
        3.6,
        6,
    ),
    # 150's phone forwards (302) to his mobile, which answers: 150's call, answered, on that number
    "p_t_forward_no_answer": (
        dict(
            direction="in",
            phone=CUSTOMER_A,
            did=DID,
            extension="150",
            answered_by="150",
            result="answered",
            extensions=("150",),
            forwarded_to=MOBILE_150,
        ),
        (1, 1, 1),
        7,
        9,
    ),
}


def counts(events: list[CallEvent]) -> tuple[int, int, int]:
    kinds = [e.event for e in events]
    return kinds.count("ringing"), kinds.count("answered"), kinds.count("ended")


def the_end(events: list[CallEvent]) -> CallEvent:
    ends = [e for e in events if e.event == "ended"]
    assert len(ends) == 1, ends
    return ends[0]


def near(value: float | None, expected: float | None, tol: float = TOL) -> bool:
    if expected is None:
        return value is None
    return value is not None and abs(value - expected) <= tol


@pytest.mark.parametrize("name", sorted(CASES))
def test_recording_outcome(name: str) -> None:
    fields, expected_counts, ring, talk = CASES[name]
    events = play(name)
    end = the_end(events)
    for key, value in fields.items():
        assert getattr(end, key) == value, (key, end)
    assert counts(events) == expected_counts
    assert {e.call_id for e in events} == {end.call_id}
    assert all(e.enterprise == "100" and e.pbx == "office" for e in events)
    assert all(e.direction == end.direction and e.phone == end.phone for e in events)
    if ring is not None and ring < 1:
        assert end.ring_seconds is not None and end.ring_seconds < ring
    else:
        assert near(end.ring_seconds, ring), end.ring_seconds
    assert near(end.talk_seconds, talk), end.talk_seconds
    assert end.started_at is not None and end.ended_at is not None
    assert [e.at for e in events] == sorted(e.at for e in events if e.at is not None)


def test_ringing_is_about_each_phone_that_rang() -> None:
    events = play("p_l_ring_group")
    assert [e.extension for e in events if e.event == "ringing"] == ["150", "151", "152"]
    assert [e.extension for e in events if e.event == "answered"] == ["151"]


def test_outgoing_answer_is_the_calling_manager() -> None:
    events = play("d_outgoing_answered")
    answered = [e for e in events if e.event == "answered"]
    assert [(e.extension, e.phone) for e in answered] == [("150", REMOTE)]


def test_ivr_answer_is_not_a_person() -> None:
    end = the_end(play("p_n_ivr_then_missed"))
    assert end.answered_by is None and end.result == "no_answer"
    assert near(end.ring_seconds, 13.4)


def test_queue_member_timeout_is_no_missed_call() -> None:
    events = play("i_queue_second_member")
    assert [e.extension for e in events if e.event == "ringing"] == ["151", "152"]
    assert all(e.extension != "151" for e in events if e.event in ("answered", "ended"))


def test_blind_transfer() -> None:
    events = play("g_blind_transfer")
    kinds = [e.event for e in events]
    assert kinds == ["ringing", "answered", "transferred", "ringing", "answered", "ended"]
    tr = events[2]
    assert (tr.kind, tr.from_extension, tr.to_extension) == ("blind", "150", "151")
    end = events[-1]
    assert end.answered_by == "151" and end.result == "answered"
    assert end.extensions == ("150", "151")
    legs = end.extra["legs"]
    assert [leg["extension"] for leg in legs] == ["150", "151"]
    assert near(legs[0]["talk_seconds"], 3) and near(legs[1]["talk_seconds"], 14)
    assert near(end.ring_seconds, 2)
    assert end.ended_at is not None and end.started_at is not None
    assert near((end.ended_at - end.started_at).total_seconds(), 22)
    assert near(end.talk_seconds, 17)


def test_attended_transfer() -> None:
    events = play("h_attended_transfer")
    kinds = [e.event for e in events]
    # the consultation rings 151; 151's answer of the consultation is not an answer of the call
    assert kinds == ["ringing", "answered", "ringing", "transferred", "answered", "ended"]
    tr = events[3]
    assert (tr.kind, tr.from_extension, tr.to_extension) == ("attended", "150", "151")
    assert events[4].extension == "151"
    end = events[-1]
    assert end.answered_by == "151" and end.extensions == ("150", "151")
    legs = end.extra["legs"]
    assert [leg["extension"] for leg in legs] == ["150", "151"]
    assert near(legs[0]["talk_seconds"], 12.5) and near(legs[1]["talk_seconds"], 12.5)
    assert end.ended_at is not None and end.started_at is not None
    assert near((end.ended_at - end.started_at).total_seconds(), 27)


def test_x3_from_timestamp_headers_alone() -> None:
    events = play("x3_timestamped_incoming_answered", with_timing=False)
    end = the_end(events)
    assert (end.direction, end.answered_by, end.result) == ("in", "150", "answered")
    assert near(end.ring_seconds, 3) and near(end.talk_seconds, 8)
    assert counts(events) == (1, 1, 1)
    assert end.started_at is not None and end.started_at.year == 2026


def test_x3_timestamp_headers_win_over_timing() -> None:
    assert play("x3_timestamped_incoming_answered") == play("x3_timestamped_incoming_answered", with_timing=False)


def test_without_any_clock_times_are_null_not_invented() -> None:
    events = play("a_incoming_answered", with_timing=False)
    end = the_end(events)
    assert all(e.at is None for e in events)
    assert (end.ring_seconds, end.talk_seconds, end.started_at, end.ended_at) == (None,) * 4
    assert end.answered_by == "150" and end.result == "answered"
