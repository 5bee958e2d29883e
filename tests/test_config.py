from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config.checks import parse_address
from agent.config.load import load
from agent.config.sections import ConfigError, OutboxSection
from agent.delivery.dispatch import CrmDispatcher
from agent.delivery.outbox import OutboxPolicy, policy_from

VALID = """
[agent]
state_dir = "st"
[database]
dsn = ""
[http]
listen = "127.0.0.1:8019"
[agi]
listen = "127.0.0.1:4573"
deadline_ms = 800
[[pbx]]
name = "office"
enterprise = "0001"
username = "agent"
secret = "s3cret-value"
"""


def write(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    return info.value.problems


def test_repository_default_config_is_valid(repo_root: Path) -> None:
    cfg = load(repo_root / "agent.toml")
    assert cfg.database.dsn == ""
    assert str(cfg.http.listen) == "127.0.0.1:8019"
    assert str(cfg.agi.listen) == "127.0.0.1:4573"
    assert cfg.agi.deadline_ms == 800
    assert cfg.pbx[0].host == "127.0.0.1" and cfg.pbx[0].port == 5038
    assert cfg.agent.state_dir == repo_root / "state"


def test_valid_file_and_relative_state_dir(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, VALID))
    assert cfg.agent.state_dir == tmp_path / "st"
    assert cfg.pbx[0].secret == "s3cret-value"
    assert "s3cret-value" not in repr(cfg)


def test_wrong_type_names_file_table_and_key(tmp_path: Path) -> None:
    text = VALID.replace("deadline_ms = 800", 'deadline_ms = "fast"')
    assert problems(tmp_path, text) == ['agent.toml: [agi] deadline_ms: expected an integer, got "fast"']


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        VALID.replace('listen = "127.0.0.1:8019"', 'listen = "localhost"')
        .replace('state_dir = "st"', 'state_dir = "st"\ncolour = "blue"')
        .replace('name = "office"\n', "")
        .replace("[database]", "[database]\npool_size = 0")
    )
    found = problems(tmp_path, text)
    assert any(p.startswith("agent.toml: [http] listen: expected an address") for p in found)
    assert any(p.startswith("agent.toml: [agent] colour: unknown key") for p in found)
    assert any(p == "agent.toml: [[pbx]] #1 name: missing (required)" for p in found)
    assert any(p.startswith("agent.toml: [database] pool_size: expected an integer from 2") for p in found)
    assert len(found) == 4


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('secret = "s3cret-value"', ""), "agent.toml: [[pbx]] office secret: missing (give secret or secret_file)"),
        (
            ('secret = "s3cret-value"', 'secret = "x"\nsecret_file = "y"'),
            "agent.toml: [[pbx]] office secret: give either secret or secret_file, not both",
        ),
        (
            ("[[pbx]]", "[[pbx]]\nport = 70000"),
            "agent.toml: [[pbx]] office port: expected an integer from 1 to 65535, got 70000",
        ),
        (
            ("deadline_ms = 800", "deadline_ms = 800\n[extra]\nx = 1"),
            "agent.toml: [extra]: unknown table (known: agent, agi, database, http, outbox, pbx, retention)",
        ),
        (
            ('dsn = ""', 'dsn = "mysql://x"'),
            'agent.toml: [database] dsn: expected "" (embedded) or a postgresql:// URL, got "mysql://x"',
        ),
        (
            ("[[pbx]]", '[[pbx]]\ninternal_number_pattern = "(("'),
            "agent.toml: [[pbx]] office internal_number_pattern: not a valid regular expression: "
            "missing ), unterminated subpattern at position 1",
        ),
    ],
)
def test_single_problems(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert problems(tmp_path, VALID.replace(*change)) == [expected]


def test_secret_file(tmp_path: Path) -> None:
    (tmp_path / "ami.secret").write_text("from-file\n")
    text = VALID.replace('secret = "s3cret-value"', 'secret_file = "ami.secret"')
    assert load(write(tmp_path, text)).pbx[0].secret == "from-file"
    missing = VALID.replace('secret = "s3cret-value"', 'secret_file = "nope.secret"')
    (found,) = problems(tmp_path, missing)
    assert found.startswith("agent.toml: [[pbx]] office secret_file: cannot read")


def test_dsn_password_is_not_echoed(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, VALID.replace('dsn = ""', 'dsn = "mysql://u:hunter2@h/db"'))
    assert "hunter2" not in found


def test_not_toml(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, "[agent\nstate_dir=")
    assert found.startswith("agent.toml: not valid TOML")


@pytest.mark.parametrize("value", ["127.0.0.1:0", "host", ":80", "a b:1", "[::1]"])
def test_bad_addresses(value: str) -> None:
    assert isinstance(parse_address(value), str)


def test_good_addresses() -> None:
    assert str(parse_address("[::1]:4573")) == "[::1]:4573"
    assert str(parse_address("pbx.example.com:5038")) == "pbx.example.com:5038"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=env, timeout=60)


def test_check_config_cli_exit_codes(tmp_path: Path, agent_env: dict[str, str]) -> None:
    good = write(tmp_path, VALID, "good.toml")
    ok = _cli("check-config", "-c", str(good), env=agent_env)
    assert ok.returncode == 0, ok.stderr
    broken = write(tmp_path, VALID.replace("deadline_ms = 800", 'deadline_ms = "fast"'), "broken.toml")
    bad = _cli("check-config", "-c", str(broken), env=agent_env)
    assert bad.returncode == 2
    assert bad.stderr.strip() == 'broken.toml: [agi] deadline_ms: expected an integer, got "fast"'
    via_env = _cli("check-config", env={**agent_env, "PBX_AGENT_CONFIG": str(broken)})
    assert via_env.returncode == 2 and "deadline_ms" in via_env.stderr


def test_cli_help_and_version(agent_env: dict[str, str]) -> None:
    assert _cli("--version", env=agent_env).stdout.startswith("pbx-agent ")
    for command in ("run", "check-config", "migrate", "token", "replay"):
        result = _cli(command, "--help", env=agent_env)
        assert result.returncode == 0 and "usage: pbx-agent " + command in result.stdout


def test_mp3_cache_mb(tmp_path: Path) -> None:
    assert load(write(tmp_path, VALID)).agent.mp3_cache_mb == 1024
    text = VALID.replace('state_dir = "st"', 'state_dir = "st"\nmp3_cache_mb = 64')
    assert load(write(tmp_path, text)).agent.mp3_cache_mb == 64
    for bad, said in (
        ("0", "expected an integer from 1 to 1048576, got 0"),
        ('"1G"', 'expected an integer, got "1G"'),
        ("1.5", "expected an integer, got 1.5"),
    ):
        text = VALID.replace('state_dir = "st"', f'state_dir = "st"\nmp3_cache_mb = {bad}')
        assert problems(tmp_path, text) == [f"agent.toml: [agent] mp3_cache_mb: {said}"]


def test_retention(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, VALID))
    assert (cfg.retention.logs_days, cfg.retention.deliveries_days, cfg.retention.calls_days) == (30, 30, 0)
    cfg = load(write(tmp_path, VALID + "[retention]\nlogs_days = 7\ndeliveries_days = 0\ncalls_days = 365\n"))
    assert (cfg.retention.logs_days, cfg.retention.deliveries_days, cfg.retention.calls_days) == (7, 0, 365)
    found = problems(
        tmp_path, VALID + '[retention]\nlogs_days = -1\ndeliveries_days = "30"\ncalls_days = 1.5\nlog_days = 3\n'
    )
    assert found == [
        "agent.toml: [retention] logs_days: expected an integer from 0 to 36500, got -1",
        'agent.toml: [retention] deliveries_days: expected an integer, got "30"',
        "agent.toml: [retention] calls_days: expected an integer, got 1.5",
        "agent.toml: [retention] log_days: unknown key (known here: calls_days, deliveries_days, logs_days)",
    ]


def test_outbox_defaults_are_set_once_in_the_config_section() -> None:
    """No [outbox] table and the outbox's own defaults agree: OutboxPolicy and CrmDispatcher take theirs from
    OutboxSection."""
    assert policy_from(OutboxSection()) == OutboxPolicy()
    defaults = {name: p.default for name, p in inspect.signature(CrmDispatcher).parameters.items()}
    section = OutboxSection()
    assert (defaults["concurrency"], defaults["breaker_threshold"], defaults["breaker_cooldown"]) == (
        section.account_concurrency,
        section.breaker_threshold,
        section.breaker_cooldown,
    )
