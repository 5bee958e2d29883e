"""The end of a big `Master.csv`, read backwards a chunk at a time, locally or over SFTP.

cdr_csv appends a row when a CDR ends, so the file is (roughly) in order of end time: the rows a
catch-up needs are at its end. `tail_lines` reads chunks from the end towards the start and stops as
soon as a chunk's rows say that everything before them is older than needed (`enough`), so a
multi-hundred-MB file costs a few chunks per reconnect. The line being written at the very end (no
newline yet) is left out: its call is not over.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import datetime, tzinfo
from typing import cast

import asyncssh

from agent.config.sections import PbxSection, RecordingsSource
from agent.ingest.ssh import SshClient, SshRefused
from agent.repair import cdr

CHUNK = 256 * 1024

ReadAt = Callable[[int, int], Awaitable[bytes]]  # (offset, size) -> at most `size` bytes
Enough = Callable[[list[str]], bool]  # the lines of one chunk -> stop reading further back


def ended_before(cutoff: datetime, tz: tzinfo | None = None) -> Enough:
    """The usual stop: this chunk has a row that ended before `cutoff` (the file is in end order)."""
    return lambda lines: any(r.end < cutoff for r in cdr.parse(lines, tz).rows)


class CdrUnreadable(Exception):
    """The CDR file could not be read (missing, no permission, SFTP down); the message says which."""


async def tail_lines(read_at: ReadAt, size: int, enough: Enough, chunk: int = CHUNK) -> list[str]:
    """Complete lines from the end of a file of `size` bytes backwards, in file order, until
    `enough(lines of the chunk just read)` (called in a thread) or the start of the file."""
    blocks: list[list[str]] = []
    end = size
    carry = b""  # the end of a line that began in an earlier chunk
    first = True
    while end > 0:
        start = max(0, end - chunk)
        data = await read_at(start, end - start) + carry
        end = start
        if first:  # a last line with no newline is still being written
            data = data[: data.rfind(b"\n") + 1]
            first = False
        if start > 0:
            cut = data.find(b"\n") + 1
            carry, data = data[:cut] if cut else data, data[cut:] if cut else b""
            if not cut:
                continue  # one line longer than a chunk: keep collecting it
        else:
            carry = b""
        lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
        blocks.append(lines)
        if not lines:
            continue
        stop: bool = await asyncio.to_thread(enough, lines)  # parsing a chunk takes tens of ms: off the loop
        if stop:
            break
    return [line for block in reversed(blocks) for line in block]


async def read_tail(source: RecordingsSource, pbx: PbxSection, enough: Enough, chunk: int = CHUNK) -> list[str]:
    """`tail_lines` of the PBX's CDR: a local file, or over SFTP with the PBX's ssh settings."""
    if source.kind == "local":
        return await _local(source.root, enough, chunk)
    if pbx.ssh is None:
        raise CdrUnreadable(f"[[pbx]] {pbx.name}: {source} needs ssh = {{...}}")
    client = SshClient(pbx.ssh)
    try:
        conn = await client.connection()
        async with conn.start_sftp_client() as sftp, sftp.open(source.root, "rb") as f:
            size = (await f.stat()).size or 0

            async def read_at(offset: int, n: int) -> bytes:
                return cast(bytes, await f.read(n, offset))  # opened "rb"

            return await tail_lines(read_at, size, enough, chunk)
    except (SshRefused, OSError, asyncssh.Error) as exc:
        raise CdrUnreadable(f"cannot read the CDR {source} on {pbx.ssh}: {exc}") from None
    finally:
        await client.close()


async def _local(path: str, enough: Enough, chunk: int) -> list[str]:
    try:
        fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
    except OSError as exc:
        raise CdrUnreadable(f"cannot read the CDR {path}: {exc.strerror or exc}") from None
    try:
        size = os.fstat(fd).st_size

        async def read_at(offset: int, n: int) -> bytes:
            return await asyncio.to_thread(os.pread, fd, n, offset)

        return await tail_lines(read_at, size, enough, chunk)
    finally:
        os.close(fd)
