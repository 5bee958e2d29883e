"""The recording a call names elsewhere than MIXMONITOR_FILENAME: FreePBX's variables, the operator's list."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.load import load
from agent.config.sections import ConfigError
from agent.ingest.pipeline import channel_rules
from agent.tracking.channels import ChannelRules
from agent.tracking.tracker import CallTracker
from tests.recordings import play

LINKED = "1700000000.7"


def call_with(variables: list[tuple[str, str]]) -> list[dict[str, str]]:
    """An outgoing call from 150 whose channel gets `variables` set (VarSet) before it hangs up unanswered."""
    base = {"Uniqueid": LINKED, "Linkedid": LINKED}
    msgs: list[dict[str, str]] = [
        {
            "Event": "Newchannel",
            "Channel": "PJSIP/150-00000001",
            "CallerIDNum": "150",
            "Context": "from-internal",
            "Exten": "+375447654321",
            **base,
        },
    ]
    msgs += [
        {"Event": "VarSet", "Channel": "PJSIP/150-00000001", "Variable": k, "Value": v, **base} for k, v in variables
    ]
    msgs.append({"Event": "Hangup", **base})
    return msgs


def recording(variables: list[tuple[str, str]], rules: ChannelRules | None = None) -> str | None:
    [end] = CallTracker(rules or ChannelRules(), "1").feed_many(call_with(variables))
    return end.recording


# what FreePBX's sub-record-check sets (inherited: the VarSet names carry the underscores)
FREEPBX = [
    ("__YEAR", "2026"),
    ("__MONTH", "07"),
    ("__DAY", "01"),
    ("__CALLFILENAME", "out-+375447654321-150-20260701-101500-1700000000.7"),
    ("__MIXMON_FORMAT", "wav"),
]


def test_freepbx_names_the_file_once_it_records() -> None:
    assert recording(FREEPBX) is None  # a file name alone: the policy may say "don't record"
    relative = "2026/07/01/out-+375447654321-150-20260701-101500-1700000000.7.wav"
    assert recording([*FREEPBX, ("__REC_STATUS", "RECORDING")]) == relative  # under the monitor directory
    with_dir = [("MIXMON_DIR", "/mnt/rec"), *FREEPBX, ("__REC_STATUS", "RECORDING")]
    assert recording(with_dir) == "/mnt/rec/" + relative


def test_mixmonitors_own_name_wins_over_the_guess() -> None:
    mixmonitor = ("MIXMONITOR_FILENAME", "/var/spool/asterisk/monitor/2026/07/01/x.wav")
    assert recording([*FREEPBX, ("__REC_STATUS", "RECORDING"), mixmonitor]) == mixmonitor[1]
    assert recording([mixmonitor, *FREEPBX, ("__REC_STATUS", "RECORDING")]) == mixmonitor[1]


def test_the_operators_variables() -> None:
    mine = [("__MY_RECORDING", "/srv/rec/call-7.wav")]
    assert recording(mine) is None
    assert recording(mine, ChannelRules(recording_variables=("MY_RECORDING",))) == "/srv/rec/call-7.wav"


def test_recording_variables_in_agent_toml(tmp_path: Path) -> None:
    toml = tmp_path / "agent.toml"
    head = '[[pbx]]\nname = "office"\nenterprise = "1"\nusername = "u"\nsecret = "s"\n'
    toml.write_text(head + 'recording_variables = ["__MY_RECORDING", "REC2"]\n')
    pbx = load(toml).pbx[0]
    assert pbx.recording_variables == ("MY_RECORDING", "REC2")
    assert channel_rules(pbx, "BY").recording_variables == ("MY_RECORDING", "REC2")
    toml.write_text(head + 'recording_variables = ["MY RECORDING"]\n')
    with pytest.raises(ConfigError, match="recording_variables"):
        load(toml)


def test_the_recorded_line_still_names_its_file() -> None:
    end = play("p_o_recorded_call")[-1]
    assert end.recording is not None and end.recording.endswith("-1795481962.0.wav")
