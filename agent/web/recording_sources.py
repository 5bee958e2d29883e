"""Where call recordings are read from: a local directory, or a directory on the PBX over SFTP.

A source answers two questions about a path *relative to its root*: what is there (`stat`: a regular
file inside the root, after resolving symlinks, or `RecordMissing`/`RecordOutside`), and its bytes
(`read`: a range, in chunks, never the whole file at once). Relative paths are checked lexically first
(no absolute names, no `..`, no NUL), then the resolved real path must still be inside the resolved root,
so a symlink pointing out of the spool is refused like `../`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol, cast

import asyncssh

from agent.config.sections import RecordingsSource
from agent.ingest.ssh import SshClient, SshRefused

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class RecordMissing(Exception):
    """Nothing to serve at this path (404)."""


class RecordOutside(RecordMissing):
    """The path is, or resolves to, something outside the recordings root (404, and a log line)."""


class RecordUnavailable(Exception):
    """The source cannot be reached right now (the PBX over SSH is down: 503)."""


@dataclass(frozen=True, slots=True)
class RecordingFile:
    relative: str  # as in the token
    real: str  # the resolved path inside the source's root
    size: int
    mtime: float
    local_path: Path | None = None  # set for local files (served with sendfile)

    @property
    def name(self) -> str:
        return posixpath.basename(self.real)


class Source(Protocol):
    key: str  # "" for [agent] recordings_dir, else the PBX name; goes into the token
    spec: RecordingsSource

    def relative(self, path: str) -> str | None: ...

    async def stat(self, relative: str) -> RecordingFile: ...

    def read(self, file: RecordingFile, start: int, stop: int) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


def clean_relative(root: str, path: str) -> str | None:
    """`path` (absolute, or relative to `root`) as a clean relative POSIX path inside `root`, or None."""
    if not path or "\x00" in path:
        return None
    full = posixpath.normpath(posixpath.join(root, path))
    rel = posixpath.relpath(full, root)
    if rel in (".", "..") or rel.startswith("../") or posixpath.isabs(rel):
        return None
    return rel


def check_relative(root: str, relative: str) -> None:
    """A token's path must already be clean and relative: anything else is an attempt (RecordOutside)."""
    if not isinstance(relative, str) or clean_relative(root, relative) != relative:
        raise RecordOutside(f"not a clean relative path: {relative!r}")


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip("/") + "/")


class LocalSource:
    def __init__(self, key: str, root: Path | str) -> None:
        self.key = key
        self.root = Path(os.path.abspath(root))
        self.spec = RecordingsSource("local", str(self.root))

    def relative(self, path: str) -> str | None:
        rel = clean_relative(self.root.as_posix(), path)
        return PurePosixPath(rel).as_posix() if rel is not None else None

    async def stat(self, relative: str) -> RecordingFile:
        return await asyncio.to_thread(self._stat, relative)

    def _stat(self, relative: str) -> RecordingFile:
        check_relative(self.root.as_posix(), relative)
        root = self.root.resolve()
        target = (root / relative).resolve()  # symlinks followed: the real file must be inside too
        if not target.is_relative_to(root):
            raise RecordOutside(f"{relative} resolves to {target}, outside {root}")
        try:
            st = target.stat()
        except OSError:
            raise RecordMissing(relative) from None
        if not stat.S_ISREG(st.st_mode):
            raise RecordMissing(f"{relative}: not a regular file")
        return RecordingFile(relative, str(target), st.st_size, st.st_mtime, local_path=target)

    async def read(self, file: RecordingFile, start: int, stop: int) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(open, file.real, "rb")
        try:
            await asyncio.to_thread(f.seek, start)
            left = stop - start
            while left > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        finally:
            f.close()

    async def close(self) -> None:
        return None


class SftpSource:
    """A directory on the PBX, read over SFTP through the PBX's SSH settings."""

    def __init__(self, key: str, client: SshClient, root: str) -> None:
        self.key = key
        self.client = client
        self.root = posixpath.normpath(root)
        self.spec = RecordingsSource("sftp", self.root)
        self._sftp: asyncssh.SFTPClient | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._closed = False  # for good: a source replaced by a reload must not connect again

    def relative(self, path: str) -> str | None:
        return clean_relative(self.root, path)

    async def _client(self) -> asyncssh.SFTPClient:
        async with self._lock:
            if self._closed:
                raise RecordUnavailable(f"{self.client}: recordings source {self.spec} was replaced (reload)")
            try:
                conn = await self.client.connection()
                if self._sftp is None or self._conn is not conn:
                    self._sftp = await conn.start_sftp_client()
                    self._conn = conn
                return self._sftp
            except (SshRefused, OSError, TimeoutError, asyncssh.Error) as exc:
                raise RecordUnavailable(f"{self.client}: {exc}") from None

    async def stat(self, relative: str) -> RecordingFile:
        check_relative(self.root, relative)
        sftp = await self._client()
        try:
            root = await sftp.realpath(self.root)
            real = await sftp.realpath(posixpath.join(self.root, relative))
            if not _inside(real, root):
                raise RecordOutside(f"{relative} resolves to {real}, outside {root}")
            attrs = await sftp.stat(real)
        except (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection) as exc:
            self._sftp = None  # the SFTP session ended (the SSH connection may live on): a new one next time
            raise RecordUnavailable(f"{self.client}: SFTP session lost: {exc.reason}") from None
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath, asyncssh.SFTPPermissionDenied):
            raise RecordMissing(relative) from None
        except asyncssh.SFTPError as exc:
            raise RecordMissing(f"{relative}: {exc.reason}") from None
        except (asyncssh.Error, OSError) as exc:
            raise RecordUnavailable(f"{self.client}: {exc}") from None
        if attrs.permissions is None or not stat.S_ISREG(attrs.permissions):
            raise RecordMissing(f"{relative}: not a regular file")
        return RecordingFile(relative, real, attrs.size or 0, float(attrs.mtime or 0))

    async def read(self, file: RecordingFile, start: int, stop: int) -> AsyncIterator[bytes]:
        sftp = await self._client()
        try:
            async with sftp.open(file.real, "rb") as f:
                offset = start
                while offset < stop:
                    chunk = cast(bytes, await f.read(min(CHUNK, stop - offset), offset))  # opened "rb"
                    if not chunk:
                        return
                    offset += len(chunk)
                    yield chunk
        except (asyncssh.Error, OSError) as exc:
            if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection):
                self._sftp = None
            raise RecordUnavailable(f"{self.client}: reading {file.real}: {exc}") from None

    async def close(self) -> None:
        self._closed = True
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
        await self.client.close()
