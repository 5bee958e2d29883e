"""The agent's PBX links: each runs while this agent holds its PBX's lock; `apply` changes the set on reload."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent.config.sections import PbxSection
from agent.ingest.locks import PbxLocks
from agent.ingest.pipeline import CallEventSink, FollowerFactory, PbxPipeline
from agent.life.supervisor import Supervisor
from agent.tracking.extstates import ExtensionStates
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics, PbxState

log = logging.getLogger(__name__)


class PbxManager:
    def __init__(
        self,
        supervisor: Supervisor,
        health: HealthRegistry,
        metrics: Metrics,
        default_region: str | None,
        sink: CallEventSink,
        dsn: str,
        *,
        lock_interval: float = 2.0,
        follower: FollowerFactory | None = None,
        name: str | None = None,
        states: dict[str, ExtensionStates] | None = None,
    ) -> None:
        """`states`: per enterprise, its phones' states, kept here as the links report them (the composition
        root hands the same mapping to smart redirect's router)."""
        self.supervisor = supervisor
        self.health = health
        self.metrics = metrics
        self.default_region = default_region
        self.sink = sink
        self.follower = follower  # hears each PBX's reconciles (the composition root hands the CDR catch-up)
        self.pipelines: dict[str, PbxPipeline] = {}
        self.states = states if states is not None else {}
        self.locks = PbxLocks(dsn, self._acquired, self._released, self._standby, interval=lock_interval, name=name)

    def start(self, pbxs: Sequence[PbxSection]) -> None:
        for pbx in pbxs:
            self._add(pbx)
        self.supervisor.start("pbx-locks", self.locks.run)

    async def apply(self, pbxs: Sequence[PbxSection]) -> list[str]:
        """Make the running links match `pbxs`: changed ones restart, others are left alone."""
        new = {p.name: p for p in pbxs}
        changes: list[str] = []
        for name, pipeline in list(self.pipelines.items()):
            if new.get(name) != pipeline.pbx:
                await self._remove(name)
                changes.append(f"{'changed' if name in new else 'removed'} {name}")
        for name, pbx in new.items():
            if name not in self.pipelines:
                self._add(pbx)
                if not any(c.endswith(f" {name}") for c in changes):
                    changes.append(f"added {name}")
        return changes

    def snapshot(self) -> list[PbxState]:
        """For /metrics: every configured PBX's link and lock, now."""
        out = []
        for name, pipeline in self.pipelines.items():
            last = pipeline.link.health.details.get("last_event_at")
            out.append(
                PbxState(
                    name,
                    pipeline.link.connected.is_set(),
                    float(last) if isinstance(last, int | float) else None,
                    name in self.locks.held,
                )
            )
        return out

    def _add(self, pbx: PbxSection) -> None:
        states = self.states.setdefault(pbx.enterprise, ExtensionStates())
        pipeline = PbxPipeline(
            pbx, self.default_region, self.health, self.metrics, self.sink, states, follower=self.follower
        )
        pipeline.link.health.set("down", role="standby", holder=None, error="waiting for the PBX lock")
        self.pipelines[pbx.name] = pipeline
        self.locks.want(pbx.name)

    async def _remove(self, name: str) -> None:
        await self.locks.release(name)
        await self.supervisor.stop_one(f"pbx:{name}")
        self.health.unregister(f"pbx:{name}")
        del self.pipelines[name]

    def _acquired(self, name: str) -> None:
        pipeline = self.pipelines.get(name)
        if pipeline is not None:
            pipeline.link.health.details.update(role="active", holder=None)
            self.supervisor.start(f"pbx:{name}", pipeline.run)

    async def _released(self, name: str) -> None:
        await self.supervisor.stop_one(f"pbx:{name}")
        pipeline = self.pipelines.get(name)
        if pipeline is not None:
            pipeline.link.health.set("down", connected=False, role="standby", holder=None, error="lost the PBX lock")

    def _standby(self, name: str, holder: str | None) -> None:
        pipeline = self.pipelines.get(name)
        if pipeline is None:
            return
        if holder:  # another agent consumes this PBX: nothing is wrong here
            pipeline.link.health.set("ok", connected=False, role="standby", holder=holder, error=None)
        else:
            pipeline.link.health.set(
                "down", connected=False, role="standby", holder=None, error="no agent holds this PBX"
            )
