"""The PBX links: one pipeline per `[[pbx]]` while this agent holds its lock, each reconnect followed by the
CDR catch-up (agent.repair, which the AMI side never imports), every call event handed on at once."""

from __future__ import annotations

from agent.config.sections import Config
from agent.delivery.planner import Planner
from agent.ingest.links import PbxManager
from agent.ingest.pipeline import CallEventSink
from agent.life.supervisor import Supervisor
from agent.parts.store import Database
from agent.redirect.router import Router
from agent.repair.catchup import CatchUpStore, follower_of
from agent.store.calls import count_ended
from agent.tracking.event import CallEvent
from agent.tracking.extstates import ExtensionStates
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics


def pbx_part(
    cfg: Config,
    supervisor: Supervisor,
    db: Database,
    planner: Planner,
    router: Router,
    states: dict[str, ExtensionStates],
    health: HealthRegistry,
    metrics: Metrics,
    *,
    lock_interval: float,
    name: str,
) -> PbxManager:
    """The links, not yet started (`PbxManager.start`); their tasks run under `supervisor`, which stops them."""
    pbxs = PbxManager(
        supervisor,
        health,
        metrics,
        cfg.agent.default_region,
        call_events(metrics, router, planner),
        db.dsn,
        lock_interval=lock_interval,
        follower=follower_of(CatchUpStore(db.pool, planner), cfg.agent.default_region, metrics.calls_backfilled),
        name=name,
        states=states,
    )
    metrics.watch_pbxs(pbxs.snapshot)
    return pbxs


def call_events(metrics: Metrics, router: Router, planner: Planner) -> CallEventSink:
    """Where every CallEvent of every PBX goes, on the AMI reader's path: enqueue only."""

    def on_call_event(event: CallEvent) -> None:
        count_ended(metrics, event)
        router.note_answered(event)  # routing rules' caller history, at once
        planner.put(event)

    return on_call_event
