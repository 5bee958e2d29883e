"""Where an AMI link's byte stream comes from: a TCP connection (plain or TLS), or a channel through SSH.

`AmiLink` asks its connector for a connected `asyncio.Protocol` and never knows which it got:

- `TcpConnector`: `loop.create_connection` to `[[pbx]] host:port`, over TLS with `[[pbx]] tls` (Asterisk's
  manager.conf `tlsenable`; the certificate is checked against `ca_file` or the system's CAs, and must name
  `server_name` or `host`);
- `SshConnector`: a direct-tcpip channel through the PBX's SSH connection to `[[pbx]] host:port` *as seen
  from the PBX* (normally its own 127.0.0.1:5038, so AMI never listens on a public address). The SSH
  connection is shared by every AMI reconnect while it lives; when it dies the channel's protocol sees
  `connection_lost` as with TCP, and the next connect opens a new SSH connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import asyncssh

from agent.config.checks import Address
from agent.config.sections import PbxSection, TlsSection
from agent.ingest.ssh import SshClient

P = TypeVar("P", bound=asyncio.Protocol)

TCP_CONNECT_TIMEOUT_S = 5.0
CHANNEL_OPEN_TIMEOUT_S = 5.0


class Connector(Protocol):
    via: str | None  # None for a direct connection; else how it is reached, for /health and the log
    timeout: float  # the whole connect, in seconds

    async def connect(self, factory: Callable[[], P]) -> P: ...

    async def close(self) -> None: ...


class TcpConnector:
    via: str | None = None

    def __init__(
        self, host: str, port: int, *, timeout: float = TCP_CONNECT_TIMEOUT_S, tls: TlsSection | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = tls_context(tls) if tls is not None else None
        self.server_name = (tls.server_name or host) if tls is not None else None

    async def connect(self, factory: Callable[[], P]) -> P:
        _, protocol = await asyncio.get_running_loop().create_connection(
            factory, self.host, self.port, ssl=self.tls, server_hostname=self.server_name
        )
        return protocol

    async def close(self) -> None:
        return None


class SshConnector:
    def __init__(self, client: SshClient, host: str, port: int) -> None:
        self.client = client
        self.host = host
        self.port = port
        self.via: str | None = str(client)
        self.timeout = client.connect_timeout + CHANNEL_OPEN_TIMEOUT_S

    async def connect(self, factory: Callable[[], P]) -> P:
        conn = await self.client.connection()
        protocol = factory()
        try:
            async with asyncio.timeout(CHANNEL_OPEN_TIMEOUT_S):
                await conn.create_connection(lambda: _ChannelSession(protocol), self.host, self.port)
        except TimeoutError:
            self.client.drop()  # an SSH connection that cannot open a channel in time is as good as dead
            raise TimeoutError(
                f"{self.client}: no channel to {Address(self.host, self.port)} within {CHANNEL_OPEN_TIMEOUT_S:g} s"
            ) from None
        except asyncssh.ChannelOpenError as exc:
            raise ConnectionError(
                f"{self.client}: the PBX cannot reach AMI at {Address(self.host, self.port)}: {exc.reason}"
            ) from None
        except asyncssh.Error as exc:
            raise ConnectionError(f"{self.client}: {exc.reason}") from None
        return protocol

    async def close(self) -> None:
        await self.client.close()


def connector_for(pbx: PbxSection) -> Connector:
    if pbx.ssh is not None:
        return SshConnector(SshClient(pbx.ssh), pbx.host, pbx.port)
    return TcpConnector(pbx.host, pbx.port, tls=pbx.tls)


def tls_context(tls: TlsSection) -> ssl.SSLContext:
    """Python's defaults (TLS 1.2 or later, the certificate and its name checked); `ca_file` replaces the
    system's CAs, so a PBX's self-signed certificate is trusted by naming it and nothing else is."""
    return ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file is not None else None)


class _ChannelTransport(asyncio.Transport):
    """An SSH channel dressed as the asyncio transport an `asyncio.Protocol` expects."""

    def __init__(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        super().__init__()
        self._chan = chan

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._chan.write(bytes(data))

    def close(self) -> None:
        self._chan.close()

    def abort(self) -> None:
        self._chan.abort()

    def is_closing(self) -> bool:
        return bool(self._chan.is_closing())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._chan.get_extra_info(name, default)


class _ChannelSession(asyncssh.SSHTCPSession[bytes]):
    """Hands an SSH channel's data and its end to an `asyncio.Protocol`."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self.protocol = protocol
        self.chan: asyncssh.SSHTCPChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.chan = chan
        self.protocol.connection_made(_ChannelTransport(chan))

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.protocol.data_received(data)

    def eof_received(self) -> bool:
        # Asterisk closed the socket on the PBX: close the channel (connection_lost follows). Only
        # half-closing, asyncssh's default, can leave the channel open when the server side waits for us.
        if self.chan is not None:
            self.chan.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()
