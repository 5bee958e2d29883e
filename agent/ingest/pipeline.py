"""One PBX's pipeline: its AMI link feeds its call tracker; the tracker's CallEvents go to the sink.

With a catch-up attached (agent.repair.catchup: backfill on connect), every reconcile also asks it for the calls
the CDR has from while the link was down; it runs in this pipeline's task group, beside the link."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from agent.config.sections import PbxSection
from agent.ingest.frame import AmiMessage
from agent.ingest.link import AmiLink
from agent.tracking.channels import DEFAULT_INTERNAL_NUMBER, DEFAULT_PHONE_CHANNELS, ChannelRules
from agent.tracking.event import CallEvent
from agent.tracking.extstates import ExtensionStates
from agent.tracking.tracker import CallTracker
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics

if TYPE_CHECKING:
    from agent.repair.catchup import CdrCatchUp

CallEventSink = Callable[[CallEvent], None]


def channel_rules(pbx: PbxSection, default_region: str | None) -> ChannelRules:
    """The [[pbx]] table's tracking keys onto the tracker's rules; unset keys keep the defaults."""
    return ChannelRules(
        phone_channels=pbx.internal_channel_patterns or DEFAULT_PHONE_CHANNELS,
        internal_number=pbx.internal_number_pattern or DEFAULT_INTERNAL_NUMBER,
        trunk_contexts=pbx.trunk_contexts,
        region=pbx.region or default_region,
    )


class PbxPipeline:
    def __init__(
        self,
        pbx: PbxSection,
        default_region: str | None,
        health: HealthRegistry,
        metrics: Metrics,
        sink: CallEventSink,
        states: ExtensionStates | None = None,
    ) -> None:
        self.pbx = pbx
        self.states = states
        self.tracker = CallTracker(channel_rules(pbx, default_region), pbx.enterprise, pbx.name)
        self._sink = sink
        self._events = metrics.ami_events
        self._reconnects = metrics.ami_reconnects.labels(pbx.name)
        self.link = AmiLink(
            pbx,
            self._on_events,
            self._on_reconcile,
            health.register(f"pbx:{pbx.name}", critical=False),
            on_reconnect=self._reconnects.inc,
        )
        self.catchup: CdrCatchUp | None = None

    async def run(self) -> None:
        if self.catchup is None:
            await self.link.run()
            return
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.catchup.run(), name=f"backfill:{self.pbx.name}")
            await self.link.run()

    def _on_events(self, msgs: list[AmiMessage], at: datetime) -> None:
        for name, count in Counter(m.get("Event", "") for m in msgs).items():
            self._events.labels(self.pbx.name, name).inc(count)
        if self.states is not None:
            self.states.feed(msgs)
        for event in self.tracker.feed_many(msgs, at):
            self._sink(event)

    def _on_reconcile(self, channels: list[AmiMessage], at: datetime) -> None:
        closed = self.tracker.reconcile(list(channels), at)
        for event in closed:
            self._sink(event)
        if self.catchup is not None:  # the live path owns what the tracker holds now and what it just closed
            self.catchup.request(self.link.lost_at, at, self.tracker.active_ids() | {e.call_id for e in closed})
