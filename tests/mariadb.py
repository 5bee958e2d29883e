"""A throwaway MariaDB server for the tests that read a PBX's CDR from MySQL (FreePBX's asteriskcdrdb):
Debian's mariadb-server-core binaries, a data directory of its own, loopback only, no grant checks."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from subprocess import DEVNULL, PIPE, STDOUT

import aiomysql
import pymysql

from tests.agent_process import free_port
from tests.conftest import reachable_tmpdir

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"


@asynccontextmanager
async def mariadb() -> AsyncIterator[int]:
    """The server's port on 127.0.0.1, for as long as the block runs; any user, no password."""
    root = reachable_tmpdir("pbx-agent-mariadb-")
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    data = root / "data"
    install = await asyncio.create_subprocess_exec(
        INSTALL_DB, "--no-defaults", f"--datadir={data}", "--skip-test-db", *as_root, stdout=PIPE, stderr=STDOUT
    )
    output, _ = await asyncio.wait_for(install.communicate(), 120)
    assert install.returncode == 0, output.decode(errors="replace")[-2000:]
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        MARIADBD,
        "--no-defaults",
        f"--datadir={data}",
        f"--socket={root / 'mysqld.sock'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        "--skip-grant-tables",
        "--skip-log-bin",
        *as_root,
        stdout=DEVNULL,
        stderr=DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = await aiomysql.connect(host="127.0.0.1", port=port, user="root")
                conn.close()
                break
            except (OSError, pymysql.err.MySQLError):
                if time.monotonic() > deadline or server.returncode is not None:
                    raise
                await asyncio.sleep(0.1)
        yield port
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)
        shutil.rmtree(root, ignore_errors=True)
