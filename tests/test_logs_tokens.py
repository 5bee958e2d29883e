from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from agent.life import logs
from agent.life.masking import mask
from agent.store.secretbox import SecretBox, load_or_create_secret
from agent.web.tokens import TokenError, TokenSigner
from connectors.registry import secret_fields


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("agent.test", logging.WARNING, __file__, 1, message, args, None)


def test_registered_secrets_and_inline_credentials_never_reach_a_line() -> None:
    logs.register_secret("ami-password-123456")
    text = logs.TextFormatter().format(
        _record("login with %s failed; GET /api?apiKey=%s", "ami-password-123456", "raw-key-abcdefghijkl")
    )
    assert "ami-password-123456" not in text and "raw-key-abcdefghijkl" not in text
    assert "ami-…3456" in text


def test_json_lines_and_journal_priorities() -> None:
    line = logs.JsonFormatter().format(_record("a %s", "thing"))
    assert json.loads(line) == {**json.loads(line), "level": "warning", "logger": "agent.test", "msg": "a thing"}
    assert logs.TextFormatter(journal=True).format(_record("x")).startswith("<4>")


def test_mask() -> None:
    assert mask("abcdefghijklmnop") == "abcd…mnop"
    assert mask("short") == "***"


def test_secret_box_round_trip_and_wrong_key(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == secret
    assert oct((tmp_path / "secret.key").stat().st_mode & 0o777) == "0o600"
    stored = SecretBox(secret, secret_fields()).encrypt("api-key")
    assert "api-key" not in stored and SecretBox(secret, secret_fields()).decrypt(stored) == "api-key"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        SecretBox(b"x" * 32, secret_fields()).decrypt(stored)


def test_token_scopes(tmp_path: Path) -> None:
    signer = TokenSigner(load_or_create_secret(tmp_path))
    assert signer.verify(signer.issue(None, 1)).is_admin
    scoped = signer.verify(signer.issue("0001", 1))
    assert scoped.may_access("0001") and not scoped.may_access("0002")
    with pytest.raises(TokenError):
        TokenSigner(b"y" * 32).verify(signer.issue(None, 1))


def test_token_cli(agent_dir: Path, agent_env: dict[str, str]) -> None:
    """With the embedded database (the token is recorded there), in a directory its server user can enter."""
    tmp_path = agent_dir
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[agent]\nstate_dir = "st"\n')
    out = subprocess.run(
        [sys.executable, "-m", "agent", "token", "-c", str(cfg), "--enterprise", "0007", "--days", "2"],
        capture_output=True,
        text=True,
        env=agent_env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    principal = TokenSigner(load_or_create_secret(tmp_path / "st")).verify(out.stdout.strip())
    assert principal.enterprise == "0007"
    bad = subprocess.run(
        [sys.executable, "-m", "agent", "token", "-c", str(cfg), "--enterprise", "no way"],
        capture_output=True,
        text=True,
        env=agent_env,
        timeout=60,
    )
    assert bad.returncode == 2 and "--enterprise" in bad.stderr
