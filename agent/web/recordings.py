"""Call recordings at signed, expiring URLs: `GET {public_url}/records/{token}` serves one file.

The token is an HS256 JWT (key derived from the state secret for this purpose only) holding the file's
path relative to its source's root, the source (`s`: the PBX whose `recordings` it is; absent for
`[agent] recordings_dir`), the wanted format (`f`: "mp3" or absent) and an expiry. A forged or expired
token gets 403; a path that is not a regular file inside the root (after resolving symlinks) 404, with a
log line when it points outside; a source that cannot be reached (the PBX over SSH is down) 503.

Files are streamed in chunks with Range support (local files by aiohttp's FileResponse; SFTP files by
`_stream`), never read whole into memory. `fmt="mp3"` on a WAV gives an MP3 made once (agent.web.lame, else ffmpeg) and
cached under `state_dir`, `[agent] mp3_cache_mb` at most (agent.web.transcode); one neither can make, the original is
served (said in /health).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from agent.config.sections import Config, PbxSection
from agent.store.secretbox import derive_key
from agent.web.health import ComponentHealth, HealthRegistry
from agent.web.recording_sources import (
    LocalSource,
    RecordingFile,
    RecordMissing,
    RecordOutside,
    RecordUnavailable,
    Source,
)
from agent.web.recording_sourceset import SourceSet
from agent.web.transcode import DEFAULT_CACHE_BYTES, Mp3Cache, find_ffmpeg

log = logging.getLogger(__name__)

KEY_PURPOSE = "records"
AUDIENCE = "pbx-agent-records"
# RetailCRM keeps recordUrl with the call for good and fetches it when someone presses play.
DEFAULT_TTL_S = 365 * 86400.0
FORMATS = ("mp3",)
READY_POLL_S = 0.5
READY_SETTLE_S = 1.5

__all__ = ["RecordDenied", "RecordLinks", "RecordMissing", "RecordOutside", "RecordUnavailable", "from_config"]


class RecordDenied(Exception):
    """The token is forged, malformed or expired (403)."""


@dataclass(frozen=True, slots=True)
class Claim:
    source: str
    relative: str
    fmt: str | None


class RecordLinks:
    """Signs recording URLs and finds what a token names. `sources` maps PBX names to their source
    (PBXs not in it, and tokens without a source, use `[agent] recordings_dir`), or `pbx` builds them from
    the `[[pbx]] recordings`; `apply` brings them up to date with a reloaded `[[pbx]]` list
    (agent.web.recording_sourceset). Without `cache_dir` no MP3 is made; with it, at most `mp3_cache_bytes` are kept."""

    def __init__(
        self,
        public_url: str,
        secret: bytes,
        recordings_dir: Path,
        *,
        ttl: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
        sources: Mapping[str, Source] | None = None,
        cache_dir: Path | None = None,
        ffmpeg: str | None = None,
        mp3_cache_bytes: int = DEFAULT_CACHE_BYTES,
        pbx: Sequence[PbxSection] = (),
        health: ComponentHealth | None = None,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.ttl = ttl
        self.default = LocalSource("", recordings_dir)
        self.recordings_dir = self.default.root
        self._set = SourceSet(self.default, sources)
        if pbx:
            self._set.replace(pbx)  # a source per `[[pbx]] recordings`; nothing to retire yet
        self.health = health  # the `recordings` component, told of the sources
        self.mp3 = Mp3Cache(cache_dir, ffmpeg, max_bytes=mp3_cache_bytes)
        self._key = derive_key(secret, KEY_PURPOSE)
        self._clock = clock

    @property
    def sources(self) -> dict[str, Source]:
        return self._set.keys

    async def apply(self, pbx: Sequence[PbxSection]) -> None:
        """Reload: each PBX's source as `pbx` says (unchanged ones kept, connection and all); the replaced
        ones are closed once the downloads using them end (agent.web.recording_sourceset)."""
        await self._set.apply(pbx)
        if self.health is not None:
            self.health.details["sources"] = self.source_specs()

    async def replaced_closed(self) -> None:
        """Returns once the sources replaced by `apply` are closed (they wait for their downloads)."""
        await self._set.replaced_closed()

    def source_specs(self) -> dict[str, str]:
        """PBX name -> where its recordings are read from (/health)."""
        return self._set.specs()

    # -- signing --------------------------------------------------------------------------------

    def relative(self, path: str) -> str | None:
        """`path` as a clean relative path inside `[agent] recordings_dir`, or None."""
        return self.default.relative(path)

    def token(self, relative: str, *, expires_at: float, source: str = "", fmt: str | None = None) -> str:
        """A token for `relative` in `source` (not checked: use `record_url`, which checks)."""
        claims: dict[str, Any] = {"aud": AUDIENCE, "p": relative, "exp": int(expires_at)}
        if source:
            claims["s"] = source
        if fmt:
            claims["f"] = fmt
        return jwt.encode(claims, self._key, algorithm="HS256")

    def record_url(self, path: str, fmt: str | None = None, *, pbx: str | None = None) -> str | None:
        """The URL to hand a CRM for a call's `recording` (a path on the PBX that recorded it), or None.

        `pbx` (the CallEvent's `pbx`) picks that PBX's source; without it the path must belong to
        exactly one configured source. `fmt="mp3"`: a WAV is served as MP3 (when it can be made).
        """
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(f"unknown recording format {fmt!r} (known: {', '.join(FORMATS)})")
        found = self._locate(path, pbx)
        if found is None:
            return None
        source, relative = found
        token = self.token(relative, expires_at=self._clock() + self.ttl, source=source.key, fmt=fmt)
        return f"{self.public_url}/records/{token}"

    def _locate(self, path: str, pbx: str | None) -> tuple[Source, str] | None:
        if pbx is not None:
            source = self._set.for_pbx(pbx)
            relative = source.relative(path)
            if relative is None:
                log.warning("recording %r of PBX %s is outside its recordings %s; not offered", path, pbx, source.spec)
                return None
            return source, relative
        candidates = self._set.candidates
        matches = [(s, r) for s in candidates if (r := s.relative(path)) is not None]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            roots = ", ".join(str(s.spec) for s in candidates)
            log.warning("recording %r is outside the recordings directories (%s); not offered", path, roots)
        else:
            log.warning(
                "recording %r could be on any of %s; give the PBX; not offered",
                path,
                ", ".join(s.key or "[agent] recordings_dir" for s, _ in matches),
            )
        return None

    # -- resolving ------------------------------------------------------------------------------

    def claim(self, token: str) -> Claim:
        """What a token names. RecordDenied for a bad or expired token."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=AUDIENCE,
                options={"require": ["exp", "aud", "p"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            raise RecordDenied("link expired") from None
        except jwt.InvalidTokenError:
            raise RecordDenied("invalid link") from None
        source, relative, fmt = claims.get("s", ""), claims.get("p"), claims.get("f")
        if not isinstance(source, str) or not isinstance(relative, str) or fmt not in (None, *FORMATS):
            raise RecordDenied("invalid link")
        return Claim(source, relative, fmt)

    @contextlib.asynccontextmanager
    async def opened(self, claim: Claim) -> AsyncIterator[tuple[Source, RecordingFile]]:
        """The file a claim names, its source held for the block (a reload closes a replaced source only
        after). RecordMissing/RecordOutside (404), RecordUnavailable (503)."""
        source = self._set.by_key(claim.source)
        if source is None:
            raise RecordMissing(f"no recordings source {claim.source!r} (the PBX was removed from agent.toml?)")
        with self._set.lease(source):
            yield source, await source.stat(claim.relative)

    async def wait_ready(
        self,
        path: str,
        limit_s: float,
        *,
        pbx: str | None = None,
        poll_s: float = READY_POLL_S,
        settle_s: float = READY_SETTLE_S,
    ) -> bool:
        """True once the recording exists, is not empty and has not changed for `settle_s` (MixMonitor has
        finished writing it); False when that did not happen within `limit_s` or it is not servable.
        A local file last written `settle_s` ago or more (this host's clock) is ready at once."""
        found = self._locate(path, pbx)
        if found is None:
            return False
        source, relative = found
        with self._set.lease(source):
            return await self._wait_ready(source, relative, path, limit_s, poll_s, settle_s)

    async def _wait_ready(
        self, source: Source, relative: str, path: str, limit_s: float, poll_s: float, settle_s: float
    ) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        seen: tuple[int, float] | None = None
        since = 0.0
        while True:
            try:
                file = await source.stat(relative)
                state: tuple[int, float] | None = (file.size, file.mtime) if file.size > 0 else None
                if state is not None and file.local_path is not None and time.time() - file.mtime >= settle_s:
                    return True
            except RecordOutside:
                return False
            except (RecordMissing, RecordUnavailable):
                state = None
            now = loop.time()
            if state is not None and state == seen and now - since >= settle_s:
                return True
            if state != seen:
                seen, since = state, now
            if now >= deadline:
                log.info("recording %s not ready within %g s", path, limit_s)
                return False
            await asyncio.sleep(max(0.0, min(poll_s, deadline - now)))

    async def close(self) -> None:
        await self._set.close()


MP3_WITHOUT_FFMPEG = "MP3 by the built-in encoder; without ffmpeg, GSM (WAV49) recordings are served as they are"


def from_config(cfg: Config, secret: bytes, health: HealthRegistry | None = None) -> RecordLinks:
    """RecordLinks with one source per `[[pbx]] recordings` (local or SFTP), reporting ffmpeg in /health."""
    ffmpeg = find_ffmpeg()
    links = RecordLinks(
        cfg.agent.public_url,
        secret,
        cfg.agent.recordings_dir,
        cache_dir=cfg.agent.state_dir / "records-mp3",
        ffmpeg=ffmpeg,
        mp3_cache_bytes=cfg.agent.mp3_cache_mb * 1024 * 1024,
        pbx=cfg.pbx,
        health=health.register("recordings", critical=False) if health is not None else None,
    )
    if links.health is not None:
        links.health.set(
            "ok",
            ffmpeg=ffmpeg is not None,
            info=None if ffmpeg else MP3_WITHOUT_FFMPEG,
            sources=links.source_specs(),
        )
    return links
