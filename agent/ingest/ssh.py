"""One SSH connection to a PBX host (`[[pbx]] ssh`), opened on demand and reused while it lives.

The host key is checked against the configured `known_hosts` file only (no ~/.ssh/config, no ssh-agent,
no password): a host that is not listed, or whose key differs, is refused. Keepalives every
`keepalive` seconds; three unanswered close the connection, and the next `connection()` opens a new one.

Failures come in two kinds: `SshRefused` (the host key is not trusted, the login or the key is refused:
an operator has to act, so callers retry slowly) and `ConnectionError`/`OSError`/`TimeoutError`
(the network or the SSH server is away: retried with the usual backoff).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncssh

from agent.config.sections import SshSection

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
KEEPALIVE_COUNT_MAX = 3
CLOSE_TIMEOUT_S = 2.0

# asyncssh logs every connection and channel at INFO; the agent logs what matters itself.
logging.getLogger("asyncssh").setLevel(logging.WARNING)


class SshRefused(Exception):
    """The SSH server was reached but we cannot go on: host key not trusted, login or key refused."""


class SshClient:
    def __init__(self, settings: SshSection, *, connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.settings = settings
        self.connect_timeout = connect_timeout
        self.opened = 0  # SSH connections made (tests: one per PBX while it lives)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()

    def __str__(self) -> str:
        return f"ssh {self.settings}"

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The live connection, or a new one. SshRefused / ConnectionError / TimeoutError when none."""
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            self._conn = None
            conn = await self._connect()
            self._conn = conn
            self.opened += 1
            log.info("SSH %s: connected", self.settings)
            return conn

    def drop(self) -> None:
        """Close the connection (it looks dead); the next `connection()` opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await conn.wait_closed()

    async def _connect(self) -> asyncssh.SSHClientConnection:
        s = self.settings
        key, known_hosts = await asyncio.to_thread(self._read_files)
        try:
            async with asyncio.timeout(self.connect_timeout):
                return await asyncssh.connect(
                    s.host,
                    s.port,
                    username=s.username,
                    client_keys=[key],
                    known_hosts=known_hosts,
                    config=None,
                    agent_path=None,
                    preferred_auth="publickey",
                    password=None,
                    keepalive_interval=s.keepalive,
                    keepalive_count_max=KEEPALIVE_COUNT_MAX,
                )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise SshRefused(
                f"SSH {s}: host key not trusted ({exc.reason}); it must be listed in known_hosts "
                f"{s.known_hosts} (an unknown host or a changed key is refused)"
            ) from None
        except asyncssh.PermissionDenied:
            raise SshRefused(
                f"SSH {s}: login refused: is the public key of {s.key_file} in the PBX user's ~/.ssh/authorized_keys?"
            ) from None
        except TimeoutError:
            raise TimeoutError(f"SSH {s}: no connection within {self.connect_timeout:g} s") from None
        except asyncssh.Error as exc:
            raise ConnectionError(f"SSH {s}: {exc.reason or type(exc).__name__}") from None
        except OSError as exc:
            raise ConnectionError(f"SSH {s}: {exc.strerror or exc}") from None

    def _read_files(self) -> tuple[asyncssh.SSHKey, asyncssh.SSHKnownHosts]:
        """Read on every connect, so an operator's fix takes effect at the next retry."""
        s = self.settings
        try:
            key = asyncssh.read_private_key(str(s.key_file))
        except (OSError, asyncssh.KeyImportError) as exc:
            raise SshRefused(f"SSH {s}: cannot use key_file {s.key_file}: {_reason(exc)}") from None
        try:
            known_hosts = asyncssh.read_known_hosts(str(s.known_hosts))
        except (OSError, ValueError) as exc:
            raise SshRefused(f"SSH {s}: cannot use known_hosts {s.known_hosts}: {_reason(exc)}") from None
        return key, known_hosts


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
