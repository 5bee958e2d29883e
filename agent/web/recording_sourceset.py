"""Each PBX's recordings source as agent.toml says now: built at start, brought up to date by `apply` on reload.

`apply` keeps the source object (and so its SFTP connection) of every PBX whose `recordings` and, for SFTP,
`ssh` did not change; it builds one for a PBX that is new or changed, and retires the sources no PBX uses any
more. A retired source is closed once nothing holds it (a download, a transcode or a wait for MixMonitor
holds its source with `lease`), and after RETIRE_GRACE_S at the latest: a download still running then is cut
short (the player can ask again; the link now resolves to the PBX's new source).

A token names its source by key: the PBX name ("" for `[agent] recordings_dir`). `by_key` resolves a PBX name
to that PBX's current source, so links handed out before a reload keep working while the PBX exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterator, Mapping, Sequence

from agent.config.sections import PbxSection, RecordingsSource, SshSection
from agent.ingest.ssh import SshClient
from agent.web.recording_sources import LocalSource, SftpSource, Source

log = logging.getLogger(__name__)

RETIRE_GRACE_S = 300.0  # as long as a transcode fed from the source may take (agent.web.transcode)

MadeFrom = tuple[RecordingsSource | None, SshSection | None]


def made_from(pbx: PbxSection) -> MadeFrom:
    """What a PBX's source is built from: the same pair, the same source."""
    spec = pbx.recordings
    if spec is None:
        return None, None
    return spec, pbx.ssh if spec.kind == "sftp" else None


def build(pbx: PbxSection, default: LocalSource) -> Source:
    spec = pbx.recordings
    if spec is None:
        return default
    if spec.kind == "sftp":
        assert pbx.ssh is not None  # the config requires it
        return SftpSource(pbx.name, SshClient(pbx.ssh), spec.root)
    return LocalSource(pbx.name, spec.root)


class SourceSet:
    """`sources` maps PBX names to their source (PBXs not in it use `default`). Sources given here rather
    than built by `apply` count as changed at the first `apply`."""

    def __init__(
        self, default: LocalSource, sources: Mapping[str, Source] | None = None, *, grace: float = RETIRE_GRACE_S
    ) -> None:
        self.default = default
        self.grace = grace
        self._by_pbx: dict[str, Source] = dict(sources or {})
        self._made_from: dict[str, MadeFrom] = {}
        self._leases: dict[Source, int] = {}
        self._idle: dict[Source, asyncio.Event] = {}
        self._retiring: dict[Source, asyncio.Task[None]] = {}
        self._index()

    def _index(self) -> None:
        self._by_key: dict[str, Source] = {"": self.default}
        for source in self._by_pbx.values():
            self._by_key.setdefault(source.key, source)
        # What a path without a PBX may belong to: the sources some PBX uses (or the default alone).
        used = {s.key: s for s in self._by_pbx.values()} or {"": self.default}
        self.candidates: Sequence[Source] = list(used.values())

    @property
    def keys(self) -> dict[str, Source]:
        return dict(self._by_key)

    def specs(self) -> dict[str, str]:
        """PBX name -> where its recordings are read from (for /health)."""
        return {name: str(s.spec) for name, s in self._by_pbx.items()}

    def for_pbx(self, name: str) -> Source:
        return self._by_pbx.get(name, self.default)

    def by_key(self, key: str) -> Source | None:
        return self._by_key.get(key) or self._by_pbx.get(key)

    # -- reload ---------------------------------------------------------------------------------

    def replace(self, pbx: Sequence[PbxSection]) -> list[Source]:
        """Swap in the sources for `pbx` (unchanged ones kept); return the old ones no PBX uses any more."""
        old = self._by_pbx
        by_pbx: dict[str, Source] = {}
        made: dict[str, MadeFrom] = {}
        for section in pbx:
            want = made_from(section)
            kept = old.get(section.name)
            if kept is not None and self._made_from.get(section.name) == want:
                by_pbx[section.name] = kept
            else:
                by_pbx[section.name] = build(section, self.default)
            made[section.name] = want
        self._by_pbx, self._made_from = by_pbx, made
        self._index()
        in_use = {*by_pbx.values(), self.default}
        return list(dict.fromkeys(s for s in old.values() if s not in in_use))

    async def apply(self, pbx: Sequence[PbxSection]) -> None:
        """`replace`, then close the retired sources: at once when idle, else once idle (or after `grace`)."""
        before = dict(self._by_pbx)
        retired = self.replace(pbx)
        for name, source in self._by_pbx.items():
            if before.get(name, self.default) is not source:
                log.info("records: PBX %s recordings now from %s", name, source.spec)
        for source in retired:
            if source in self._retiring:
                continue
            idle = self._idle.get(source)
            if idle is None:
                await source.close()
            else:  # in use: owned here, awaited or cancelled by close()
                task = asyncio.create_task(self._close_when_idle(source, idle), name=f"retire {source.spec}")
                self._retiring[source] = task
                task.add_done_callback(functools.partial(self._retired, source))

    async def _close_when_idle(self, source: Source, idle: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(self.grace):
                await idle.wait()
        except TimeoutError:
            log.warning("records: %s still in use %g s after it was replaced; closing it", source.spec, self.grace)
        await source.close()

    async def replaced_closed(self) -> None:
        """Returns once the replaced sources that were still in use are closed."""
        await asyncio.gather(*self._retiring.values())

    def _retired(self, source: Source, _task: asyncio.Task[None]) -> None:
        self._retiring.pop(source, None)

    @contextlib.contextmanager
    def lease(self, source: Source) -> Iterator[Source]:
        """Hold `source` open (a reload that retires it waits, up to `grace`, for the block to end)."""
        self._leases[source] = self._leases.get(source, 0) + 1
        self._idle.setdefault(source, asyncio.Event())
        try:
            yield source
        finally:
            left = self._leases[source] - 1
            if left:
                self._leases[source] = left
            else:
                del self._leases[source]
                self._idle.pop(source).set()

    async def close(self) -> None:
        retiring = list(self._retiring.items())
        for _, task in retiring:
            task.cancel()
        await asyncio.gather(*(t for _, t in retiring), return_exceptions=True)
        sources = dict.fromkeys([self.default, *self._by_pbx.values(), *(s for s, _ in retiring)])
        await asyncio.gather(*(s.close() for s in sources))
