"""The agent as a child process, for the tests that run it as an admin would: its config, start, health."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Ports for a config are drawn below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default),
# where the fake servers of the tests running beside this one (bound to port 0) never land: a port taken from
# that range and given to an agent as "nothing listens there" could meanwhile become another test's SSH or AMI
# server, which the agent would then talk to (seen as a stray SSH connection, and "BadStatusLine: SSH-2.0").
PORTS = range(20000, 32000)


def free_port() -> int:
    """A port nothing listens on now, outside the ephemeral range (see PORTS)."""
    for _ in range(200):
        port = random.choice(PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


def write_config(directory: Path, port: int) -> Path:
    cfg = directory / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "state"\n[http]\nlisten = "127.0.0.1:{port}"\n'
        f'[agi]\nlisten = "127.0.0.1:{free_port()}"\n'
        '[[pbx]]\nname = "office"\nenterprise = "0001"\nusername = "agent"\nsecret = "ami-secret-value"\n'
        f"port = {free_port()}\n"  # nothing listens there: the AMI link is down, the agent degraded
    )
    return cfg


def start(cfg: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """The agent's output goes to agent.log beside its config (a pipe nobody drains could block it)."""
    with open(cfg.parent / "agent.log", "a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "-c", str(cfg)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


def output(cfg_dir: Path) -> str:
    return (cfg_dir / "agent.log").read_text()


def wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            args = proc.args
            assert isinstance(args, list)
            log = (Path(str(args[-1])).parent / "agent.log").read_text()[-3000:]
            raise AssertionError(f"agent exited {proc.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                body: dict[str, object] = json.loads(resp.read())
                if resp.status == 200:
                    return body
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("agent not healthy in time")


def postmaster_pid(directory: Path) -> int | None:
    try:
        return int((directory / "state" / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def can_move_var_log() -> bool:
    """Whether a child can be given a /var/log of its own (root with util-linux's unshare: a mount namespace)."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


async def start_agent(cfg: Path, var_log: Path | None = None) -> asyncio.subprocess.Process:
    """`pbx-agent run` from an async test; its output goes to agent.log beside the config. `var_log`: the
    directory the agent sees as /var/log (a private bind mount, nothing changes for other processes), so that
    the defaults that point there (the standard Master.csv) are tried as they are (needs can_move_var_log)."""
    command = [sys.executable, "-m", "agent", "run", "-c", str(cfg)]
    if var_log is not None:
        script = 'mount --bind "$0" /var/log && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(var_log), *command]
    log = await asyncio.to_thread(open, cfg.parent / "agent.log", "ab")  # the child keeps its own copy
    try:
        return await asyncio.create_subprocess_exec(*command, stdout=log, stderr=log)
    finally:
        log.close()
