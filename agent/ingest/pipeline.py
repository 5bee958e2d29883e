"""One PBX's pipeline: its AMI link feeds its call tracker; the tracker's CallEvents go to the sink.

A follower handed in at construction (the composition root hands the CDR catch-up, agent.repair.catchup, to
every PBX) hears every reconcile: when the link was lost, the reconcile time, the calls the live tracker owns,
and the calls the reconcile closed (ended while the link was down: the follower sends the CDR's account of
each, or hands them back). It runs in this pipeline's task group, beside the link, never on the reader's path.

Beside them, after every (re)connect and every `Reload` event, the pipeline asks the PBX which of its endpoints
are trunks and which are phones (agent.ingest.discovery) and hands the answer to the tracker; an action the AMI
user may not run is named in the link's /health (`endpoints.warnings`)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence, Set
from datetime import datetime
from typing import Protocol

from agent.config.sections import PbxSection
from agent.ingest.discovery import learn_endpoints
from agent.ingest.event_names import label_of
from agent.ingest.frame import AmiMessage
from agent.ingest.link import AmiLink, AmiNotConnected
from agent.tracking.channels import DEFAULT_INTERNAL_NUMBER, DEFAULT_PHONE_CHANNELS, ChannelRules
from agent.tracking.event import CallEvent
from agent.tracking.extstates import ExtensionStates
from agent.tracking.tracker import CallTracker
from agent.web.health import ComponentHealth, HealthRegistry
from agent.web.metrics import Metrics

log = logging.getLogger(__name__)

CallEventSink = Callable[[CallEvent], None]


class ReconcileFollower(Protocol):
    """Runs beside a PBX's link and hears each reconcile (queue work there; never wait).

    `closed`: the calls the reconcile just closed (they ended while the link was down, so their end is a guess);
    the follower owns them from here: it delivers a better account of each if it has one, and hands the others
    back through `release`, which sends them on as the live path would have."""

    def request(
        self,
        lost_at: datetime | None,
        until: datetime,
        owned: Set[str],
        closed: Sequence[CallEvent],
        release: CallEventSink,
    ) -> None: ...

    async def run(self) -> None: ...


# Builds a PBX's follower from its link's /health component, or None when the PBX has none.
FollowerFactory = Callable[[PbxSection, ComponentHealth], ReconcileFollower | None]


def channel_rules(pbx: PbxSection, default_region: str | None) -> ChannelRules:
    """The [[pbx]] table's tracking keys onto the tracker's rules; unset keys keep the defaults."""
    return ChannelRules(
        phone_channels=pbx.internal_channel_patterns or DEFAULT_PHONE_CHANNELS,
        internal_number=pbx.internal_number_pattern or DEFAULT_INTERNAL_NUMBER,
        trunk_contexts=pbx.trunk_contexts,
        recording_variables=pbx.recording_variables,
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
        follower: FollowerFactory | None = None,
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
        self.follower = follower(pbx, self.link.health) if follower is not None else None
        self._learn = asyncio.Event()  # set on (re)connect and on `Reload`: ask the PBX about its endpoints

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            if self.follower is not None:
                tasks.create_task(self.follower.run(), name=f"backfill:{self.pbx.name}")
            learner = tasks.create_task(self._learn_endpoints(), name=f"endpoints:{self.pbx.name}")
            await self.link.run()
            learner.cancel()

    async def _learn_endpoints(self) -> None:
        while True:
            await self._learn.wait()
            self._learn.clear()
            try:
                learned = await learn_endpoints(self.link, self.tracker.env.rules)
            except AmiNotConnected:
                continue  # the next connect asks again
            self.tracker.learn(learned.endpoints)
            warnings = [
                f"the PBX refused {action} (Permission denied): add `system` to the AMI user's `write` in "
                "manager.conf, else trunks are told from phones by context and caller ID only"
                for action in learned.refused
            ]
            self.link.health.details["endpoints"] = {
                "trunks": learned.endpoints.trunks(),
                "phones": len(learned.endpoints.phones()),
                "refused": list(learned.refused),
                "warnings": warnings,
            }
            for warning in warnings:
                log.warning("PBX %s: %s", self.pbx.name, warning)
            log.info("PBX %s: endpoints learned, trunks %s", self.pbx.name, learned.endpoints.trunks() or "none")

    def _on_events(self, msgs: list[AmiMessage], at: datetime) -> None:
        for name, count in Counter(label_of(m.get("Event", "")) for m in msgs).items():
            self._events.labels(self.pbx.name, name).inc(count)
        if any(m.get("Event") == "Reload" for m in msgs):
            self._learn.set()
        if self.states is not None:
            self.states.feed(msgs)
        for event in self.tracker.feed_many(msgs, at):
            self._sink(event)

    def _on_reconcile(self, channels: list[AmiMessage], at: datetime) -> None:
        self._learn.set()  # after every (re)connect
        closed = self.tracker.reconcile(list(channels), at)
        if self.follower is None:
            for event in closed:
                self._sink(event)
            return
        # the live path owns what the tracker holds now; what it just closed goes to the follower
        self.follower.request(self.link.lost_at, at, self.tracker.active_ids(), closed, self._sink)
