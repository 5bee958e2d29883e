"""/health is built from status providers that each component registers (STYLE practice 8)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "down"]
Overall = Literal["ok", "degraded", "failed"]

CHECK_TIMEOUT_S = 2.0


@dataclass(slots=True)
class ComponentHealth:
    """A component's own view of itself, updated as its state changes."""

    critical: bool
    status: Status = "down"
    details: dict[str, Any] = field(default_factory=dict)
    since: float = field(default_factory=time.time)

    def set(self, status: Status, **details: Any) -> None:
        if status != self.status:
            self.since = time.time()
        self.status = status
        self.details.update(details)


Probe = Callable[[], Awaitable[dict[str, Any]]]


class HealthRegistry:
    def __init__(self) -> None:
        self._components: dict[str, ComponentHealth] = {}
        self._probes: dict[str, tuple[bool, Probe]] = {}

    def register(self, name: str, *, critical: bool) -> ComponentHealth:
        health = ComponentHealth(critical=critical)
        self._components[name] = health
        return health

    def register_probe(self, name: str, probe: Probe, *, critical: bool) -> None:
        """A probe is asked at each /health request; it returns details and raises when down."""
        self._probes[name] = (critical, probe)

    def unregister(self, name: str) -> None:
        self._components.pop(name, None)
        self._probes.pop(name, None)

    def get(self, name: str) -> ComponentHealth | None:
        return self._components.get(name)

    async def report(self) -> dict[str, Any]:
        components: dict[str, dict[str, Any]] = {}
        for name, health in self._components.items():
            components[name] = {
                "status": health.status,
                "critical": health.critical,
                "changed_at": health.since,
                **health.details,
            }
        names = list(self._probes)
        results = await asyncio.gather(*(self._run_probe(self._probes[n][1]) for n in names))
        for name, (status, details) in zip(names, results, strict=True):
            components[name] = {"status": status, "critical": self._probes[name][0], **details}
        return {"status": overall(components.values()), "components": components}

    @staticmethod
    async def _run_probe(probe: Probe) -> tuple[Status, dict[str, Any]]:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                return "ok", await probe()
        except TimeoutError:
            return "down", {"error": f"no answer within {CHECK_TIMEOUT_S:g} s"}
        except Exception as exc:  # a probe's failure is the information we report
            return "down", {"error": type(exc).__name__ + (f": {exc}" if str(exc) else "")}


def overall(components: Any) -> Overall:
    down = [c for c in components if c["status"] != "ok"]
    if any(c["critical"] for c in down):
        return "failed"
    return "degraded" if down else "ok"
