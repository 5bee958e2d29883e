"""Prometheus metrics, on a registry of the agent's own (tests run several agents in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.up = Gauge("pbx_agent_up", "1 while the agent runs", registry=r)
        self.component_restarts = Counter(
            "pbx_agent_component_restarts", "Components restarted after a crash", ["component"], registry=r)
        self.ami_events = Counter("pbx_agent_ami_events", "AMI events read", ["pbx", "event"], registry=r)
        self.ami_reconnects = Counter("pbx_agent_ami_reconnects", "AMI reconnections", ["pbx"], registry=r)
        self.calls_ended = Counter(
            "pbx_agent_calls_ended", "Calls ended", ["direction", "result"], registry=r)
        self.deliveries = Counter(
            "pbx_agent_deliveries", "CRM deliveries by outcome", ["crm", "status"], registry=r)
        self.deliveries_by_status = Gauge(
            "pbx_agent_deliveries_by_status", "Outbox rows by status (at the last /health)", ["status"],
            registry=r)
        self.delivery_seconds = Histogram(
            "pbx_agent_delivery_seconds", "Duration of one CRM exchange", ["crm"], registry=r,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.http_requests = Counter(
            "pbx_agent_http_requests", "HTTP requests served", ["route", "status"], registry=r)
        self.http_latency = Histogram(
            "pbx_agent_http_request_seconds", "HTTP request latency", ["route"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))
