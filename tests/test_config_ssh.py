"""[[pbx]] ssh = {...} and [[pbx]] recordings: every problem names the file, the PBX and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.load import load
from agent.config.sections import RecordingsSource, SshSection
from tests.test_config import VALID, problems, write


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    (tmp_path / "id_ed25519").write_text("key")
    (tmp_path / "known_hosts").write_text("pbx.example.com ssh-ed25519 AAAA")
    return tmp_path


SSH = (
    'ssh = { host = "pbx.example.com", username = "pbxagent", key_file = "id_ed25519", known_hosts = "known_hosts" }\n'
)


def test_ssh_and_sftp_recordings(keys: Path) -> None:
    config = load(write(keys, VALID + SSH + 'recordings = "sftp:/var/spool/asterisk/monitor/"\n'))
    (pbx,) = config.pbx
    assert pbx.ssh == SshSection(
        host="pbx.example.com",
        username="pbxagent",
        key_file=keys / "id_ed25519",
        known_hosts=keys / "known_hosts",
        port=22,
        keepalive=15.0,
    )
    assert str(pbx.ssh) == "pbxagent@pbx.example.com:22"
    assert pbx.recordings == RecordingsSource("sftp", "/var/spool/asterisk/monitor")
    assert (pbx.host, pbx.port) == ("127.0.0.1", 5038)  # as seen from the PBX


def test_local_recordings_and_no_ssh(keys: Path) -> None:
    assert load(write(keys, VALID)).pbx[0].recordings is None  # [agent] recordings_dir
    assert load(write(keys, VALID + 'recordings = "rec"\n')).pbx[0].recordings == RecordingsSource(
        "local", str(keys / "rec")
    )
    assert load(write(keys, VALID + 'recordings = "local:/srv/rec"\n')).pbx[0].recordings == RecordingsSource(
        "local", "/srv/rec"
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('ssh = "pbx.example.com"\n', "[[pbx]] office ssh: expected a table"),
        (
            'ssh = { username = "u", key_file = "id_ed25519", known_hosts = "known_hosts" }\n',
            "[[pbx]] office ssh.host: missing (required)",
        ),
        (
            'ssh = { host = "pbx example", username = "u", key_file = "id_ed25519", known_hosts = "known_hosts" }\n',
            "[[pbx]] office ssh.host: not a valid host name",
        ),
        (
            'ssh = { host = "h", port = 0, username = "u", key_file = "id_ed25519", known_hosts = "known_hosts" }\n',
            "[[pbx]] office ssh.port: expected an integer from 1 to 65535, got 0",
        ),
        (
            'ssh = { host = "h", username = "u;rm", key_file = "id_ed25519", known_hosts = "known_hosts" }\n',
            "[[pbx]] office ssh.username: expected a user name",
        ),
        (
            'ssh = { host = "h", username = "u", known_hosts = "known_hosts" }\n',
            "[[pbx]] office ssh.key_file: missing (required): the private key",
        ),
        (
            'ssh = { host = "h", username = "u", key_file = "nope", known_hosts = "known_hosts" }\n',
            "[[pbx]] office ssh.key_file: no such file: ",
        ),
        (
            'ssh = { host = "h", username = "u", key_file = "id_ed25519" }\n',
            "[[pbx]] office ssh.known_hosts: missing (required): the PBX's host key is checked against this file; "
            "there is no accept-anything default",
        ),
        (
            'ssh = { host = "h", username = "u", key_file = "id_ed25519", known_hosts = "" }\n',
            "[[pbx]] office ssh.known_hosts: must not be empty",
        ),
        (
            'ssh = { host = "h", username = "u", key_file = "id_ed25519", known_hosts = "known_hosts",'
            " keepalive = 0 }\n",
            "[[pbx]] office ssh.keepalive: expected a number of at least 1, got 0",
        ),
        (
            'ssh = { host = "h", username = "u", key_file = "id_ed25519", known_hosts = "known_hosts",'
            ' password = "x" }\n',
            "[[pbx]] office ssh.password: unknown key",
        ),
        (
            'recordings = "sftp:/var/spool"\n',
            '[[pbx]] office recordings: "sftp:/var/spool" reads over SFTP, which needs ssh = {...}',
        ),
        (SSH + 'recordings = "sftp:spool"\n', '[[pbx]] office recordings: expected "sftp:/absolute/directory'),
        ('recordings = "ftp:/x"\n', '[[pbx]] office recordings: expected "/directory", "local:/directory" or'),
        ('recordings = ""\n', "[[pbx]] office recordings: must not be empty"),
        ("recordings = 5\n", "[[pbx]] office recordings: expected a string, got 5"),
    ],
)
def test_ssh_problems(keys: Path, extra: str, expected: str) -> None:
    found = problems(keys, VALID + extra)
    assert any(p.startswith("agent.toml: " + expected) for p in found), found
