"""ExtensionStates on the recorded AMI streams (Local and PJSIP) and on the documented status codes."""

from __future__ import annotations

import pytest

from agent.ingest.frame import AmiFrameParser, AmiMessage
from agent.redirect.variables import MAX_VALUE_CHARS, safe_value, set_variable
from agent.tracking.extstates import ExtensionStates, PhoneState, device_extension
from tests import recordings
from tests.agi_client import agi_args


def messages(name: str) -> list[AmiMessage]:
    return AmiFrameParser().feed(recordings.ami(name))


def states_seen(name: str, exten: str) -> list[PhoneState]:
    states = ExtensionStates()
    seen: list[PhoneState] = []
    for msg in messages(name):
        states.feed([msg])
        state = states.state(exten)
        if not seen or seen[-1] != state:
            seen.append(state)
    return seen


@pytest.mark.parametrize("name", ["a_incoming_answered", "p_a_incoming_answered", "p_b_incoming_missed"])
def test_manager_150_is_busy_during_the_call_and_idle_after(name: str) -> None:
    assert states_seen(name, "150") == [PhoneState.UNKNOWN, PhoneState.IN_USE, PhoneState.IDLE]


def test_pjsip_ringing_counts_as_occupied() -> None:
    states = ExtensionStates()
    ringing = [
        m for m in messages("p_a_incoming_answered") if m.get("Event") == "ExtensionStatus" and m.get("Status") == "8"
    ]
    assert ringing, "the PJSIP recording has a real Ringing hint state"
    states.feed(ringing)
    assert not states.available("150")


def test_busy_phone_never_changes_state_and_stays_available() -> None:
    states = ExtensionStates()
    states.feed(messages("p_c_incoming_busy"))
    assert states.state("150") == PhoneState.UNKNOWN
    assert states.available("150")
    assert states.state("provider") == PhoneState.IDLE  # the trunk device is tracked but is no extension


def test_a_hint_wins_over_a_device_and_clear_forgets() -> None:
    states = ExtensionStates(hint_contexts=["ext-hints"])
    states.feed([AmiMessage({"Event": "DeviceStateChange", "Device": "PJSIP/151", "State": "INUSE"})])
    assert states.state("151") == PhoneState.IN_USE
    states.feed([AmiMessage({"Event": "ExtensionStatus", "Exten": "151", "Context": "ext-hints", "Status": "0"})])
    assert states.available("151")
    states.feed([AmiMessage({"Event": "ExtensionStatus", "Exten": "151", "Context": "other", "Status": "1"})])
    assert states.available("151")  # a hint in a context we were told to ignore
    states.feed([AmiMessage({"Event": "ExtensionStatus", "Exten": "151", "Context": "ext-hints", "Status": "4"})])
    assert states.state("151") == PhoneState.UNAVAILABLE
    states.feed([AmiMessage({"Event": "ExtensionStatus", "Exten": "151", "Context": "ext-hints", "Status": "-1"})])
    assert states.state("151") == PhoneState.IN_USE  # hint gone: the device state again
    states.clear()
    assert states.state("151") == PhoneState.UNKNOWN


@pytest.mark.parametrize(
    ("device", "exten"),
    [
        ("PJSIP/150", "150"),
        ("SIP/151", "151"),
        ("Local/152@agents", "152"),
        ("Queue:operators", None),
        ("PJSIP/150/sip:150@1.2.3.4", None),
    ],
)
def test_device_names(device: str, exten: str | None) -> None:
    assert device_extension(device) == exten


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("Ivan Petrov", "Ivan Petrov"),
        ("Иван Петров", "Иван Петров"),
        ('Anna "Big" Smith, Jr.\n', "Anna Big Smith Jr."),
        ("${SHELL(rm -rf /)}", "SHELL rm -rf"),
        ("a\\b|c;d", "a b c d"),
        ("x" * 200, "x" * MAX_VALUE_CHARS),
    ],
)
def test_safe_value(raw: str, safe: str) -> None:
    assert safe_value(raw) == safe


def test_set_variable_survives_asterisk_argument_parsing() -> None:
    for value in ("", "150", "Иван Петров", 'a "b" \\ c'):
        line = set_variable("REDIRECT_MANAGER", value).decode()
        assert line.endswith("\n") and line.count("\n") == 1
        assert agi_args(line.rstrip("\n")) == ["SET", "VARIABLE", "REDIRECT_MANAGER", safe_value(value)]
