"""Root running a command on a service's state directory works as the directory's owner (agent/life/runas.py)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import reachable_tmpdir

# Stands in for the service's own user (`pbx-agent`): any unprivileged user other than Debian's `postgres`
SERVICE_USER = "nobody"


def _service_uid() -> int:
    try:
        return pwd.getpwnam(SERVICE_USER).pw_uid
    except KeyError:
        pytest.skip(f"no {SERVICE_USER!r} user")


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root switches users")


def _service_state(tmp: Path) -> tuple[Path, Path, int]:
    """A config whose state_dir belongs to the service user, as systemd's StateDirectory= leaves it."""
    uid = _service_uid()
    state = tmp / "state"
    state.mkdir(mode=0o700)
    os.chown(state, uid, pwd.getpwuid(uid).pw_gid)
    cfg = tmp / "agent.toml"
    cfg.write_text(f'[agent]\nstate_dir = "{state}"\n')
    cfg.chmod(0o644)
    return cfg, state, uid


def _pbx_agent(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    repo = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        env={**env, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )


def test_a_token_made_by_root_leaves_the_secret_to_the_service_user(agent_env: dict[str, str]) -> None:
    tmp = reachable_tmpdir("pbx-agent-runas-")
    try:
        cfg, state, uid = _service_state(tmp)
        made = _pbx_agent("token", "-c", str(cfg), env=agent_env)
        assert made.returncode == 0, made.stderr
        assert (state / "secret.key").stat().st_uid == uid  # root's would stop the service reading it
    finally:
        shutil.rmtree(tmp)


def test_migrate_by_root_runs_the_cluster_as_the_service_user(agent_env: dict[str, str]) -> None:
    tmp = reachable_tmpdir("pbx-agent-runas-")
    try:
        cfg, state, uid = _service_state(tmp)
        state.chmod(0o700)  # StateDirectoryMode=0700: Debian's `postgres` could not even enter it
        done = _pbx_agent("migrate", "-c", str(cfg), env=agent_env)  # as redeliver, backfill: the cluster
        assert done.returncode == 0, done.stderr
        owners = {path.stat().st_uid for path in state.rglob("*") if not path.is_symlink()}
        assert owners == {uid}, "root-owned files left in the state directory"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_root_may_not_run_the_agent_on_the_service_users_state(agent_env: dict[str, str]) -> None:
    tmp = reachable_tmpdir("pbx-agent-runas-")
    try:
        cfg, state, _uid = _service_state(tmp)
        refused = _pbx_agent("run", "-c", str(cfg), env=agent_env)
        assert refused.returncode == 2
        assert f"{state} belongs to {SERVICE_USER}: run the agent as that user" in refused.stderr
        assert list(state.iterdir()) == []
    finally:
        shutil.rmtree(tmp)
