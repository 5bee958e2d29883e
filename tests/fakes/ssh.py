"""A real asyncssh server on loopback standing in for a remote PBX host's sshd.

Public-key login for one user; direct-tcpip (what `ssh -L` and the agent's AMI tunnel use) only to the
allowed ports on 127.0.0.1, anything else refused; SFTP on this machine's file system, like OpenSSH's
sftp-server (no chroot); no shell. Keys are generated per test.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import TracebackType
from typing import Self

import asyncssh


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


class _Server(asyncssh.SSHServer):
    def __init__(self, fake: FakeSshServer) -> None:
        self.fake = fake
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.fake.connections += 1
        self.fake.live.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.fake.live.discard(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        allowed = dest_host in ("127.0.0.1", "localhost") and dest_port in self.fake.allow_ports
        self.fake.channel_requests.append((dest_host, dest_port, allowed))
        return allowed


class FakeSshServer:
    def __init__(
        self,
        client_key: asyncssh.SSHKey,
        *,
        allow_ports: tuple[int, ...] = (),
        username: str = "pbxagent",
        sftp: bool = True,
    ) -> None:
        self.client_key = client_key
        self.allow_ports = allow_ports
        self.username = username
        self.sftp = sftp
        self.host_key = new_key()
        self.port = 0
        self.connections = 0  # SSH connections accepted (including ones that fail the handshake)
        self.live: set[asyncssh.SSHServerConnection] = set()
        self.channel_requests: list[tuple[str, int, bool]] = []
        self._acceptor: asyncssh.SSHAcceptor | None = None

    async def start(self) -> None:
        authorized = asyncssh.import_authorized_keys(self.client_key.export_public_key().decode())
        self._acceptor = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            authorized_client_keys=authorized,
            server_factory=lambda: _Server(self),
            sftp_factory=self.sftp or None,
            allow_scp=False,
            keepalive_interval=0,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.close()  # first: no client reconnecting while the others are dropped
        await self.drop_clients()
        if acceptor is not None:
            # the server's wait_closed waits for its connections too: bounded, so that a test failing with a
            # client still attached shows its assertion instead of hanging in teardown until pytest's timeout
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await acceptor.wait_closed()

    async def drop_clients(self) -> None:
        """Close every SSH connection from the server side (what a restarted sshd or a cut line does)."""
        conns = list(self.live)
        for conn in conns:
            conn.close()
        async with asyncio.timeout(5):
            await asyncio.gather(*(conn.wait_closed() for conn in conns))

    def known_hosts_line(self, key: asyncssh.SSHKey | None = None) -> str:
        """The line `ssh-keyscan -p PORT 127.0.0.1` would give (for another key: a mismatch)."""
        public = (key or self.host_key).export_public_key().decode().strip()
        return f"[127.0.0.1]:{self.port} {public}\n"

    def write_client_files(self, directory: Path, *, host_key: asyncssh.SSHKey | None = None) -> tuple[Path, Path]:
        """key_file and known_hosts for the agent's `[[pbx]] ssh`."""
        key_file = directory / "id_ed25519"
        self.client_key.write_private_key(str(key_file))
        known_hosts = directory / "known_hosts"
        known_hosts.write_text(self.known_hosts_line(host_key))
        return key_file, known_hosts

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
