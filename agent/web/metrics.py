"""Prometheus metrics, on a registry of the agent's own (tests run several agents in one process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class PbxState:
    """One configured PBX as /metrics shows it (read at scrape time)."""

    name: str
    connected: bool
    last_event_at: float | None  # Unix time of the last AMI event, None before the first
    lock_held: bool  # this agent holds the PBX's lock (it consumes the PBX's AMI stream)


class _PbxCollector(Collector):
    def __init__(self, states: Callable[[], Iterable[PbxState]]) -> None:
        self.states = states

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        connected, age, held = families
        now = time.time()
        for s in self.states():
            connected.add_metric([s.name], 1.0 if s.connected else 0.0)
            held.add_metric([s.name], 1.0 if s.lock_held else 0.0)
            if s.last_event_at is not None:
                age.add_metric([s.name], max(0.0, now - s.last_event_at))
        return families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("pbx_agent_pbx_connected", "1 while the AMI link to the PBX is up", labels=["pbx"]),
            GaugeMetricFamily(
                "pbx_agent_pbx_last_event_age_seconds",
                "Seconds since the PBX's last AMI event (absent before the first)",
                labels=["pbx"],
            ),
            GaugeMetricFamily(
                "pbx_agent_pbx_lock_held",
                "1 when this agent holds the PBX's lock and consumes its events",
                labels=["pbx"],
            ),
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.up = Gauge("pbx_agent_up", "1 while the agent runs", registry=r)
        self.component_restarts = Counter(
            "pbx_agent_component_restarts", "Components restarted after a crash", ["component"], registry=r
        )
        self.ami_events = Counter("pbx_agent_ami_events", "AMI events read", ["pbx", "event"], registry=r)
        self.ami_reconnects = Counter("pbx_agent_ami_reconnects", "AMI reconnections", ["pbx"], registry=r)
        self.calls_backfilled = Counter(
            "pbx_agent_calls_backfilled", "Calls taken from the PBX's CDR after a (re)connect", ["pbx"], registry=r
        )
        self.calls_ended = Counter("pbx_agent_calls_ended", "Calls ended", ["direction", "result"], registry=r)
        self.deliveries = Counter("pbx_agent_deliveries", "CRM deliveries by outcome", ["crm", "status"], registry=r)
        self.deliveries_by_status = Gauge(
            "pbx_agent_deliveries_by_status", "Outbox rows by status (at the last /health)", ["status"], registry=r
        )
        self.deliveries_by_crm = Gauge(
            "pbx_agent_deliveries_by_crm",
            "Outbox rows by CRM and status (at the last scrape)",
            ["crm", "status"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "pbx_agent_delivery_seconds",
            "Duration of one CRM exchange",
            ["crm"],
            registry=r,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.agents_sharing_limits = Gauge(
            "pbx_agent_agents_sharing_rate_limits",
            "Agents sending from this database (this one included); each paces every CRM account at 1/N of its "
            "rate limit",
            registry=r,
        )
        self.agents_sharing_limits.set(1)
        self.pruned_rows = Counter(
            "pbx_agent_pruned_rows", "Rows deleted past their keeping time ([retention])", ["table"], registry=r
        )
        self.http_requests = Counter("pbx_agent_http_requests", "HTTP requests served", ["route", "status"], registry=r)
        self.http_latency = Histogram(
            "pbx_agent_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        )

    def watch_pbxs(self, states: Callable[[], Iterable[PbxState]]) -> None:
        """Per PBX, read at every scrape: connected, age of the last AMI event, whether this agent holds it."""
        self.registry.register(_PbxCollector(states))
