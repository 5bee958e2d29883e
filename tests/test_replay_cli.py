"""`pbx-agent replay` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from agent.repair import replay
from tests import recordings
from tests.recordings import recordings_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = replay.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lines_with_design_field_names(capsys: pytest.CaptureFixture[str]) -> None:
    r = recordings_dir()
    code, out, _ = run(
        capsys,
        str(r / "g_blind_transfer.ami"),
        "--timing",
        str(r / "g_blind_transfer.timing"),
        "--json",
        "--pbx",
        "office",
        "--enterprise",
        "42",
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["event"] for row in rows] == ["ringing", "answered", "transferred", "ringing", "answered", "ended"]
    end = rows[-1]
    assert end["enterprise"] == "42" and end["extra"]["pbx"] == "office"
    assert end["answered_by"] == "151" and end["result"] == "answered"
    assert end["at"].endswith("Z") and end["started_at"].endswith("Z")
    assert isinstance(end["talk_seconds"], float) and isinstance(end["ring_seconds"], float)
    assert rows[2]["kind"] == "blind" and "kind" not in rows[0] and "result" not in rows[0]


def test_typed_pbx_and_default_extension_keep_their_place_in_extra_json() -> None:
    """`pbx` and `default_extension` are CallEvent fields now; the JSON still carries them inside `extra`,
    after its own keys, as it did when they were `extra` keys."""
    events = recordings.play("g_blind_transfer")  # the tracker was given PBX "office"
    end = replace(events[-1], default_extension="150")
    assert end.pbx == "office" and "legs" in end.extra and "pbx" not in end.extra
    assert list(end.to_json()["extra"]) == [*end.extra, "pbx", "default_extension"]
    assert list(end.to_json())[-1] == "extra" and "pbx" not in end.to_json()
    assert events[0].to_json()["extra"] == {"pbx": "office"}
    assert "extra" not in replace(events[0], pbx=None).to_json()


def test_without_timing_or_timestamps_durations_are_null(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    alone = tmp_path / "p_b_incoming_missed.ami"  # no .timing beside it
    alone.write_bytes((recordings_dir() / "p_b_incoming_missed.ami").read_bytes())
    code, out, _ = run(capsys, str(alone), "--json")
    end = json.loads(out.splitlines()[-1])
    assert code == 0 and end["result"] == "no_answer"
    assert end["ring_seconds"] is None and end["talk_seconds"] is None and end["at"] is None


def test_the_timing_file_beside_the_recording_is_found(capsys: pytest.CaptureFixture[str]) -> None:
    r = recordings_dir()
    _, found, _ = run(capsys, str(r / "p_b_incoming_missed.ami"), "--json")
    _, named, _ = run(
        capsys, str(r / "p_b_incoming_missed.ami"), "--timing", str(r / "p_b_incoming_missed.timing"), "--json"
    )
    assert found == named
    assert json.loads(found.splitlines()[-1])["ring_seconds"] == pytest.approx(20, abs=0.5)


def test_a_file_that_is_no_ami_stream_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    code, out, err = run(capsys, str(readme))
    assert code == 2 and out == ""
    assert "README.md is not an AMI stream" in err


SHORT_CID_TRUNK_CALL = (
    "Asterisk Call Manager/9.0.0\r\n"
    "Event: Newchannel\r\nChannel: PJSIP/provider-00000001\r\nCallerIDNum: 123\r\nContext: incoming\r\n"
    "Exten: 375173880000\r\nUniqueid: 1700000000.1\r\nLinkedid: 1700000000.1\r\n\r\n"
    "Event: Newchannel\r\nChannel: PJSIP/150-00000002\r\nCallerIDNum: 150\r\nContext: from-internal\r\n"
    "Exten: s\r\nUniqueid: 1700000000.2\r\nLinkedid: 1700000000.1\r\n\r\n"
    "Event: DialBegin\r\nChannel: PJSIP/provider-00000001\r\nCallerIDNum: 123\r\nUniqueid: 1700000000.1\r\n"
    "Linkedid: 1700000000.1\r\nDestChannel: PJSIP/150-00000002\r\nDestUniqueid: 1700000000.2\r\n\r\n"
)


def test_config_classifies_channels_as_the_live_agent(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ami = tmp_path / "capture.ami"
    ami.write_text(SHORT_CID_TRUNK_CALL)
    toml = tmp_path / "agent.toml"
    toml.write_text(
        '[[pbx]]\nname = "office"\nenterprise = "0042"\nusername = "u"\nsecret = "s"\ntrunk_contexts = ["incoming"]\n'
    )
    _, plain, _ = run(capsys, str(ami), "--json")
    assert json.loads(plain)["direction"] == "internal"  # the defaults cannot tell: the caller ID decides
    code, out, _ = run(capsys, str(ami), "--json", "-c", str(toml))
    row = json.loads(out)
    assert code == 0 and (row["direction"], row["phone"], row["enterprise"]) == ("in", "123", "0042")
    assert row["extra"] == {"pbx": "office"}
    code, _, err = run(capsys, str(ami), "-c", str(toml), "--pbx", "other")
    assert code == 2 and "name one [[pbx]] with --pbx (tables: office)" in err


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    r = recordings_dir()
    code, out, _ = run(capsys, str(r / "p_o_recorded_call.ami"), "--timing", str(r / "p_o_recorded_call.timing"))
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["time", "event", "call"]
    assert [line.split()[1] for line in lines[1:]] == ["ringing", "answered", "ended"]
    assert "result=answered" in lines[-1] and "recording=/var/spool/asterisk/monitor/" in lines[-1]


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, str(tmp_path / "nope.ami"))
    assert code == 2 and out == ""
    assert "cannot read AMI file" in err and "nope.ami" in err


def test_bad_timing_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.timing"
    bad.write_text("0.0\tzero\t30\tbanner\n")
    code, _, err = run(capsys, str(recordings_dir() / "a_incoming_answered.ami"), "--timing", str(bad))
    assert code == 2 and "timing line 1" in err
    code, _, err = run(
        capsys, str(recordings_dir() / "a_incoming_answered.ami"), "--timing", str(tmp_path / "missing.timing")
    )
    assert code == 2 and "cannot read timing file" in err


def test_python_dash_m_works() -> None:
    r = recordings_dir()
    proc = subprocess.run(
        [sys.executable, "-m", "agent.repair.replay", str(r / "c_incoming_busy.ami"), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=Path(replay.__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["result"] == "busy"
