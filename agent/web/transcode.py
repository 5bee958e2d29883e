"""WAV recordings as MP3 for players that take nothing else (amoCRM), made once and cached.

The agent encodes them itself (agent.web.lame: LAME from the `lameenc` wheels, nothing to install on the
host): the PCM, A-law and µ-law WAVs Asterisk records. A WAV it cannot read (WAV49's GSM) goes to `ffmpeg`
when the host has one.

The cache file is named by a hash of (source, path, size, mtime), so a recording that changes gets a new
one; it is written to a temporary name (`*.part.mp3`) and renamed, so a half-made MP3 is never served.
When neither can make it (or making it fails) the caller serves the original.

The cache is bounded (`[agent] mp3_cache_mb`): after each new MP3, and once at start, `sweep` deletes the
least recently used MP3s until the cache fits (a cache hit sets the file's mtime, so mtime is "last used").
The MP3 just made stays even when it alone is over the cap; a `.part.mp3` being written is never deleted, one
older than the transcode timeout is a leftover (the agent died mid-transcode) and is. Deleting an MP3 that
is being sent is harmless: the response holds it open, and Linux keeps an unlinked open file readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

from agent.web.lame import Unsupported, WavToMp3
from agent.web.recording_sources import RecordingFile, RecordUnavailable, Source

log = logging.getLogger(__name__)

TRANSCODE_TIMEOUT_S = 300.0
TRANSCODE_CONCURRENCY = 2  # encodings at once; more requests wait their turn
WAV_SUFFIXES = (".wav",)
DEFAULT_CACHE_BYTES = 1024 * 1024 * 1024  # [agent] mp3_cache_mb's default
PART_SUFFIX = ".part.mp3"


def find_ffmpeg() -> str | None:
    return shutil.which("ffmpeg")


def wants_mp3(fmt: str | None, file: RecordingFile) -> bool:
    return fmt == "mp3" and file.name.lower().endswith(WAV_SUFFIXES)


class Mp3Cache:
    """MP3s of WAV recordings under `cache_dir`, at most about `max_bytes` of them (none without `cache_dir`).
    `ffmpeg`: for the WAVs the built-in encoder does not take."""

    def __init__(
        self,
        cache_dir: Path | None,
        ffmpeg: str | None,
        *,
        timeout: float = TRANSCODE_TIMEOUT_S,
        max_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.cache_dir = cache_dir
        self.ffmpeg = ffmpeg if cache_dir is not None else None
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.made = 0  # transcodings run (tests: once per recording)
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(TRANSCODE_CONCURRENCY)

    async def mp3(self, source: Source, file: RecordingFile) -> Path | None:
        """The cached MP3 of `file`, made now if needed; None when it cannot be made."""
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(f"{source.key}\0{file.relative}\0{file.size}\0{file.mtime}".encode()).hexdigest()
        target = self.cache_dir / f"{digest[:32]}.mp3"
        lock = self._locks.setdefault(digest, asyncio.Lock())
        try:
            async with lock:
                if await asyncio.to_thread(_use, target):
                    return target
                async with self._slots:
                    made = await self._encode(self.cache_dir, source, file, target)
                    if made is None and self.ffmpeg is not None:
                        made = await self._transcode(self.ffmpeg, self.cache_dir, source, file, target)
                if made:
                    await self.sweep(keep=target)
                return target if made else None
        finally:
            if not lock.locked() and self._locks.get(digest) is lock:
                del self._locks[digest]

    async def sweep(self, keep: Path | None = None) -> list[str]:
        """Bring the cache under `max_bytes` (least recently used first); the names deleted."""
        if self.cache_dir is None:
            return []
        removed = await asyncio.to_thread(sweep, self.cache_dir, self.max_bytes, part_max_age=self.timeout, keep=keep)
        if removed:
            log.info(
                "records: MP3 cache over %d MB: %d least recently used deleted", self.max_bytes >> 20, len(removed)
            )
        return removed

    async def _encode(self, cache_dir: Path, source: Source, file: RecordingFile, target: Path) -> bool | None:
        """With the built-in encoder; None when it does not take this WAV."""
        await asyncio.to_thread(cache_dir.mkdir, parents=True, exist_ok=True)
        part = target.with_name(f"{target.stem}.{os.getpid()}{PART_SUFFIX}")
        encoder = WavToMp3()
        try:
            out = await asyncio.to_thread(open, part, "wb")
            try:
                async with asyncio.timeout(self.timeout):
                    async for chunk in source.read(file, 0, file.size):
                        await asyncio.to_thread(_write, out, encoder.feed, chunk)
                    await asyncio.to_thread(_write, out, lambda _: encoder.finish(), b"")
            finally:
                out.close()
        except Unsupported as exc:
            log.info("records: %s: %s, not for the built-in MP3 encoder", file.relative, exc)
            _unlink(str(part))
            return None
        except (TimeoutError, RecordUnavailable, OSError) as exc:
            why = str(exc) or type(exc).__name__
            log.warning("records: MP3 of %s failed (%s); serving the original", file.relative, why)
            _unlink(str(part))
            return False
        await asyncio.to_thread(os.replace, part, target)
        self.made += 1
        log.info("records: %s encoded to MP3 (%d bytes of WAV)", file.relative, file.size)
        return True

    async def _transcode(self, ffmpeg: str, cache_dir: Path, source: Source, file: RecordingFile, target: Path) -> bool:
        await asyncio.to_thread(cache_dir.mkdir, parents=True, exist_ok=True)
        part = target.with_name(f"{target.stem}.{os.getpid()}{PART_SUFFIX}")
        local = file.local_path
        source_args = ["-nostdin", "-i", str(local)] if local else ["-i", "pipe:0"]  # SFTP: streamed in
        args = [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            *source_args,
            "-vn",
            "-codec:a",
            "libmp3lame",
            "-q:a",
            "5",
            "-f",
            "mp3",
            "-y",
            str(part),
        ]
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL if local else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.timeout):
                assert proc.stderr is not None
                feed = _feed(proc.stdin, source.read(file, 0, file.size)) if proc.stdin else _nothing()
                _, errors = await asyncio.gather(feed, proc.stderr.read())
                code = await proc.wait()
        except (TimeoutError, RecordUnavailable, OSError) as exc:
            log.warning(
                "records: ffmpeg on %s failed (%s); serving the original", file.relative, str(exc) or type(exc).__name__
            )
            code, errors = -1, b""
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if code != 0:
            if errors:
                log.warning(
                    "records: ffmpeg on %s exited %s: %s; serving the original",
                    file.relative,
                    code,
                    errors.decode(errors="replace").strip()[-300:],
                )
            with contextlib.suppress(OSError):
                part.unlink()
            return False
        await asyncio.to_thread(os.replace, part, target)
        self.made += 1
        log.info("records: %s transcoded to MP3 (%d bytes of WAV)", file.relative, file.size)
        return True


def _write(out: BinaryIO, encode: Callable[[bytes], bytes], chunk: bytes) -> None:
    """Encode a chunk and write the MP3 bytes, in one trip to a thread."""
    out.write(encode(chunk))


def _use(path: Path) -> bool:
    """True when the cached MP3 is there, which now counts as just used (its mtime is what `sweep` orders by)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def sweep(
    cache_dir: Path, max_bytes: int, *, part_max_age: float, keep: Path | None = None, now: float | None = None
) -> list[str]:
    """Delete MP3s in `cache_dir`, oldest mtime first, until the files there add up to at most `max_bytes`;
    never `keep` nor a `.part.mp3` modified within `part_max_age` seconds (one older is deleted whatever the
    size). One scandir; a file that vanishes meanwhile is skipped. Returns the names deleted."""
    now = time.time() if now is None else now
    total = 0
    removed: list[str] = []
    done: list[tuple[float, str, int]] = []
    try:
        entries = list(os.scandir(cache_dir))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not entry.name.endswith(".mp3"):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if entry.name.endswith(PART_SUFFIX):
            if now - st.st_mtime > part_max_age and _unlink(entry.path):
                removed.append(entry.name)
            else:
                total += st.st_size  # being written: soon in the cache
            continue
        total += st.st_size
        if keep is None or entry.path != str(keep):
            done.append((st.st_mtime, entry.name, st.st_size))
    done.sort()
    for _, name, size in done:
        if total <= max_bytes:
            break
        if _unlink(os.path.join(cache_dir, name)):
            removed.append(name)
            total -= size
    return removed


def _unlink(path: str) -> bool:
    """True when `path` is gone now because of us."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("records: cannot delete %s from the MP3 cache: %s", path, exc.strerror or exc)
        return False
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
