"""A command line tool run beside a live agent on the same state leaves the agent, its database and its locks
exactly as it found them; alone, it starts the embedded cluster for itself and stops it again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.agent_process import alive, free_port, postmaster_pid, start, wait_healthy, write_config


def cli(cfg: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args, "-c", str(cfg)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_beside_a_running_agent_leaves_its_database_up(agent_dir: Path, agent_env: dict[str, str]) -> None:
    port = free_port()
    cfg = write_config(agent_dir, port)
    proc = start(cfg, agent_env)
    try:
        wait_healthy(port, proc)
        server = postmaster_pid(agent_dir)
        assert server is not None

        done = cli(cfg, agent_env, "migrate")

        assert done.returncode == 0, done.stderr
        assert "applied 0 migration(s)" in done.stdout
        assert postmaster_pid(agent_dir) == server and alive(server)
        assert proc.poll() is None
        components = wait_healthy(port, proc, timeout=5)["components"]
        assert isinstance(components, dict) and components["database"]["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert postmaster_pid(agent_dir) is None or not alive(server)  # the agent still stops its own cluster


def test_migrate_alone_starts_the_cluster_and_stops_it(agent_dir: Path, agent_env: dict[str, str]) -> None:
    cfg = write_config(agent_dir, free_port())

    done = cli(cfg, agent_env, "migrate")

    assert done.returncode == 0, done.stderr
    assert "applied" in done.stdout
    assert postmaster_pid(agent_dir) is None
