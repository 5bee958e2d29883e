"""WAV recordings as MP3 for players that take nothing else (amoCRM), made once by ffmpeg and cached.

The cache file is named by a hash of (source, path, size, mtime), so a recording that changes gets a new
one; it is written to a temporary name and renamed, so a half-made MP3 is never served. Without ffmpeg
(or when it fails) the caller serves the original.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from agent.recsources import RecordingFile, RecordUnavailable, Source

log = logging.getLogger(__name__)

TRANSCODE_TIMEOUT_S = 300.0
TRANSCODE_CONCURRENCY = 2  # ffmpeg processes at once; more requests wait their turn
WAV_SUFFIXES = (".wav",)


def find_ffmpeg() -> str | None:
    return shutil.which("ffmpeg")


def wants_mp3(fmt: str | None, file: RecordingFile) -> bool:
    return fmt == "mp3" and file.name.lower().endswith(WAV_SUFFIXES)


class Mp3Cache:
    def __init__(self, cache_dir: Path, ffmpeg: str | None, *, timeout: float = TRANSCODE_TIMEOUT_S) -> None:
        self.cache_dir = cache_dir
        self.ffmpeg = ffmpeg
        self.timeout = timeout
        self.made = 0  # transcodings run (tests: once per recording)
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(TRANSCODE_CONCURRENCY)

    async def mp3(self, source: Source, file: RecordingFile) -> Path | None:
        """The cached MP3 of `file`, made now if needed; None without ffmpeg or when it fails."""
        if self.ffmpeg is None:
            return None
        digest = hashlib.sha256(f"{source.key}\0{file.relative}\0{file.size}\0{file.mtime}".encode()).hexdigest()
        target = self.cache_dir / f"{digest[:32]}.mp3"
        lock = self._locks.setdefault(digest, asyncio.Lock())
        try:
            async with lock:
                if await asyncio.to_thread(target.is_file):
                    return target
                async with self._slots:
                    made = await self._transcode(self.ffmpeg, source, file, target)
                return target if made else None
        finally:
            if not lock.locked() and self._locks.get(digest) is lock:
                del self._locks[digest]

    async def _transcode(self, ffmpeg: str, source: Source, file: RecordingFile, target: Path) -> bool:
        await asyncio.to_thread(self.cache_dir.mkdir, parents=True, exist_ok=True)
        part = target.with_name(f"{target.stem}.{os.getpid()}.part.mp3")
        local = file.local_path
        source_args = ["-nostdin", "-i", str(local)] if local else ["-i", "pipe:0"]  # SFTP: streamed in
        args = [ffmpeg, "-hide_banner", "-loglevel", "error", *source_args,
                "-vn", "-codec:a", "libmp3lame", "-q:a", "5", "-f", "mp3", "-y", str(part)]
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL if local else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(self.timeout):
                assert proc.stderr is not None
                feed = _feed(proc.stdin, source.read(file, 0, file.size)) if proc.stdin else _nothing()
                _, errors = await asyncio.gather(feed, proc.stderr.read())
                code = await proc.wait()
        except (TimeoutError, RecordUnavailable, OSError) as exc:
            log.warning("records: ffmpeg on %s failed (%s); serving the original", file.relative,
                        str(exc) or type(exc).__name__)
            code, errors = -1, b""
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if code != 0:
            if errors:
                log.warning("records: ffmpeg on %s exited %s: %s; serving the original", file.relative, code,
                            errors.decode(errors="replace").strip()[-300:])
            with contextlib.suppress(OSError):
                part.unlink()
            return False
        await asyncio.to_thread(os.replace, part, target)
        self.made += 1
        log.info("records: %s transcoded to MP3 (%d bytes of WAV)", file.relative, file.size)
        return True


async def _feed(stdin: asyncio.StreamWriter, chunks: AsyncIterator[bytes]) -> None:
    try:
        async for chunk in chunks:
            stdin.write(chunk)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # ffmpeg stopped reading; its exit code says why
    finally:
        stdin.close()


async def _nothing() -> None:
    return None
