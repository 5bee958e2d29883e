"""A private PostgreSQL cluster under the agent's state directory, reachable only by Unix socket.

initdb and postgres refuse to run as root, so when the agent runs as root the cluster's files belong to
an unprivileged user (Debian's `postgres`) and the server binaries run as that user. The socket
directory is mode 0700, so only that user and root can reach the server (trust authentication).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent.life.runas import state_owner

log = logging.getLogger(__name__)

DB_USER = "pbx_agent"
DB_NAME = "pbx_agent"
RUN_AS_WHEN_ROOT = "postgres"
START_TIMEOUT_S = 60


class EmbeddedPgError(Exception):
    """The embedded cluster cannot be created or started; the message says what to do."""


@dataclass(frozen=True, slots=True)
class PgBinaries:
    bindir: Path

    def __getitem__(self, name: str) -> str:
        return str(self.bindir / name)


def find_binaries() -> PgBinaries:
    """`pg_config --bindir` if it has a server, else the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(Path(v) for v in versions)
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return PgBinaries(bindir)
    raise EmbeddedPgError(
        "no PostgreSQL server binaries found (looked at pg_config --bindir and /usr/lib/postgresql/*/bin): "
        "install the server (apt-get install postgresql) or set [database] dsn to an existing server"
    )


def _version_key(path: str) -> tuple[int, ...]:
    part = Path(path).parent.name
    return tuple(int(x) for x in part.split(".") if x.isdigit()) or (0,)


class EmbeddedPostgres:
    """initdb on first use, start/stop with the agent, recover from an agent killed with -9."""

    def __init__(self, root: Path, binaries: PgBinaries | None = None) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.socket_dir = root / "run"
        self.log_file = root / "postgres.log"
        self._binaries = binaries
        self._owner = _unprivileged_owner(root.parent)

    @property
    def dsn(self) -> str:
        return f"postgresql://{DB_USER}@/{DB_NAME}?host={self.socket_dir}"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{DB_USER}@/{database}?host={self.socket_dir}"

    @property
    def binaries(self) -> PgBinaries:
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    async def start(self) -> bool:
        """Start the server unless it runs already; True when this call started it."""
        started = await asyncio.to_thread(self._start_blocking)
        await self._ensure_database()
        return started

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop_blocking)

    def server_alive(self) -> bool:
        """Does this cluster's server process live? Cheap (no subprocess): its postmaster.pid and /proc."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return False
        return _is_postgres_of(pid, self.data_dir)

    # -- blocking parts, run in a thread -------------------------------------------------------------

    def _start_blocking(self) -> bool:
        binaries = self.binaries
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(binaries)
        if self._running(binaries):
            log.info(
                "embedded PostgreSQL already running in %s (started by another pbx-agent process, or left over "
                "from an earlier run); using it",
                self.data_dir,
            )
            return False
        self._remove_stale_pid()
        options = (
            f"-c listen_addresses='' -k {self.socket_dir} -c unix_socket_permissions=0700 -c jit=off"
            " -c dynamic_shared_memory_type=mmap"
        )
        result = self._run(
            [
                binaries["pg_ctl"],
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ],
            timeout=START_TIMEOUT_S + 10,
        )
        if result.returncode != 0:
            raise EmbeddedPgError(f"embedded PostgreSQL did not start: {self._tail_log() or result.stderr.strip()}")
        log.info("embedded PostgreSQL started in %s", self.data_dir)
        return True

    def _stop_blocking(self) -> None:
        if not self.data_dir.exists():
            return
        result = self._run(
            [self.binaries["pg_ctl"], "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "20", "stop"], timeout=30
        )
        if result.returncode == 0:
            log.info("embedded PostgreSQL stopped")
        elif "Is server running?" not in result.stderr:
            log.warning("embedded PostgreSQL stop: %s", result.stderr.strip())

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_dir.mkdir(exist_ok=True, mode=0o700)
        if self._owner is not None:
            uid, gid = self._owner
            holder = self.root.parent
            st = holder.stat()
            if st.st_uid == os.geteuid() and not st.st_mode & 0o001:
                # the state dir is ours: let the cluster's owner pass through it (not list it)
                holder.chmod((st.st_mode & 0o777) | 0o001)
            for path in (self.root, self.socket_dir):
                os.chown(path, uid, gid)
            if self.data_dir.exists():
                os.chown(self.data_dir, uid, gid)
            self._check_reachable(self.root)

    def _check_reachable(self, path: Path) -> None:
        """The unprivileged owner must be able to walk down to the cluster: say which directory stops it."""
        assert self._owner is not None
        uid, gid = self._owner
        for parent in reversed(path.resolve().parents):
            st = parent.stat()
            if st.st_uid == uid:
                continue
            if st.st_mode & 0o001 or (st.st_gid == gid and st.st_mode & 0o010):
                continue
            raise EmbeddedPgError(
                f"the embedded PostgreSQL runs as user {_user_name(uid)!r}, which cannot enter {parent} "
                f"(mode {oct(st.st_mode & 0o777)}): choose a [agent] state_dir outside it, or chmod o+x {parent}"
            )

    def _initdb(self, binaries: PgBinaries) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise EmbeddedPgError(f"{self.data_dir} exists but holds no PostgreSQL cluster; move it away")
        log.info("creating the embedded PostgreSQL cluster in %s", self.data_dir)
        result = self._run(
            [
                binaries["initdb"],
                "-D",
                str(self.data_dir),
                "-U",
                DB_USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--auth=trust",
                "--no-instructions",
            ],
            timeout=120,
        )
        if result.returncode != 0:
            raise EmbeddedPgError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")

    def _running(self, binaries: PgBinaries) -> bool:
        result = self._run([binaries["pg_ctl"], "-D", str(self.data_dir), "status"], timeout=10)
        if result.returncode != 0:
            return False
        # pg_ctl trusts kill(pid, 0), which also succeeds for an unreaped (zombie) server killed with -9
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return False
        return _is_postgres_of(pid, self.data_dir)

    def _remove_stale_pid(self) -> None:
        """A postmaster.pid whose process is gone, or whose PID now belongs to something else."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        if _is_postgres_of(pid, self.data_dir):
            return
        log.warning("removing stale %s (PID %d is not this cluster's server)", pid_file, pid)
        pid_file.unlink(missing_ok=True)
        # the socket directory is private to this cluster, so its lock files are stale too
        for lock in self.socket_dir.glob(".s.PGSQL.*"):
            lock.unlink(missing_ok=True)

    def _run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._owner is not None:
            kwargs.update(user=self._owner[0], group=self._owner[1], extra_groups=[])
        # NOTIFY_SOCKET/WATCHDOG_*: PostgreSQL speaks sd_notify too; its READY=1 is not the agent's
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_", "NOTIFY_SOCKET", "WATCHDOG_"))}
        env["LANG"] = "C"
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(self.root),
            env=env,
            start_new_session=True,
            **kwargs,
        )

    def _tail_log(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    async def _ensure_database(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn_for("postgres"))
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        finally:
            await conn.close()


def _unprivileged_owner(state_dir: Path) -> tuple[int, int] | None:
    """Who runs the cluster when the agent is root: the owner of a state directory that belongs to a
    service user (see agent.life.runas), else Debian's `postgres`. None when the agent is not root."""
    if os.geteuid() != 0:
        return None
    owner = state_owner(state_dir)
    if owner is not None:
        return owner
    try:
        entry = pwd.getpwnam(RUN_AS_WHEN_ROOT)
    except KeyError:
        raise EmbeddedPgError(
            f"running as root, the embedded PostgreSQL needs the unprivileged user {RUN_AS_WHEN_ROOT!r} "
            "(created by apt-get install postgresql); or run the agent as another user, or set [database] dsn"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"UID {uid}"


def _is_postgres_of(pid: int, data_dir: Path) -> bool:
    """Is `pid` a live (not zombie) PostgreSQL server whose working directory is `data_dir`?"""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if "\nState:\tZ" in status:
        return False
    if not cmdline or not cmdline[0].endswith((b"postgres", b"postmaster")):
        return False
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return True  # a postgres we cannot inspect: let pg_ctl decide
    return Path(cwd) == data_dir.resolve()
