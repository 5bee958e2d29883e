"""docs/grafana.json asks only for metrics the agent exports, with the suffixes their types have."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp

from agent.app import Agent

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana.json"
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def _queried(dashboard: dict[str, object]) -> set[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]  # type: ignore[attr-defined]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]  # type: ignore[index]
    return {name for e in exprs for name in re.findall(r"\bpbx_agent_\w+", e)}


async def test_every_dashboard_query_names_an_exported_metric(running_agent: Agent) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{running_agent.parts.http_port}/metrics") as resp,
    ):
        text = await resp.text()
    types = dict(re.findall(r"^# TYPE (\w+) (\w+)$", text, re.M))
    queried = _queried(dashboard)
    assert len(queried) >= 10
    for name in sorted(queried):
        # TYPE lines name counters with their _total, histograms without their series' suffixes
        if name in types:
            assert types[name] in ("gauge", "counter"), f"{name} is a {types[name]}: query one of its series"
            assert types[name] != "counter" or name.endswith("_total")
            continue
        family = next((name.removesuffix(s) for s in HISTOGRAM_SERIES if name.endswith(s)), None)
        assert family is not None and types.get(family) == "histogram", f"{name}: no such metric in /metrics"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
