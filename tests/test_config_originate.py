"""agent.toml keys added for click-to-call ([[pbx]] originate_*) and recordings ([agent] recordings_dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.load import load
from agent.config.sections import ConfigError
from tests.test_config import VALID, write


def test_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, VALID))
    assert cfg.pbx[0].originate_channel == "PJSIP/{extension}"
    assert cfg.pbx[0].originate_context == "from-internal"
    assert cfg.agent.recordings_dir == Path("/var/spool/asterisk/monitor")


def test_set_and_relative_recordings_dir(tmp_path: Path) -> None:
    text = VALID.replace('state_dir = "st"', 'state_dir = "st"\nrecordings_dir = "rec"') + (
        'originate_channel = "Local/{extension}@agents"\noriginate_context = "crm-out"\n'
    )
    cfg = load(write(tmp_path, text))
    assert cfg.agent.recordings_dir == tmp_path / "rec"
    assert (cfg.pbx[0].originate_channel, cfg.pbx[0].originate_context) == ("Local/{extension}@agents", "crm-out")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'originate_channel = "PJSIP/101"',
            "[[pbx]] office originate_channel: expected a dial string with {extension}",
        ),
        ('originate_channel = "PJSIP/{ext}"', "[[pbx]] office originate_channel: expected a dial string"),
        ('originate_channel = "PJSIP/{extension},30"', "[[pbx]] office originate_channel: expected a dial string"),
        ('originate_channel = ""', "[[pbx]] office originate_channel: must not be empty"),
        ('originate_context = "from internal"', "[[pbx]] office originate_context: expected a dialplan context"),
        ("originate_context = 5", "[[pbx]] office originate_context: expected a string, got 5"),
    ],
)
def test_invalid_originate_keys_are_named(tmp_path: Path, line: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, VALID + line + "\n"))
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("agent.toml: " + expected), info.value.problems
