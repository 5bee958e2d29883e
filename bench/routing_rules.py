"""What routing rules add to a cached smart-redirect answer: `Router.cached()` without rules against the
same call with a full rule set (hours with a lunch break, holidays, 50 managers' own hours, history on,
a blocklist of 1,000 numbers and 100 prefixes, 100 DID rules), in-process, no sockets.

Run alone from the repo root: `python bench/routing_rules.py [--n N] [--reps R] [--write bench/ROUTING.md]`.
Reports the median over `--reps` runs of the per-call time of `--n` cached answers, and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.redirect.router import Router
from agent.redirect.rules import Rules, parse
from connectors.base import Manager, ResponsibleLookup

CALLER = "+375291234567"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL = {
    "timezone": "Europe/Berlin",
    "hours": {d: [["00:00", "12:00"], ["12:30", "24:00"]] for d in DAYS},  # open now, whatever "now" is
    "holidays": ["2020-01-01", "2020-12-25"],
    "managers": {str(200 + i): {"hours": {d: [["00:00", "24:00"]] for d in DAYS}} for i in range(49)}
    | {"150": {"hours": {d: [["00:00", "24:00"]] for d in DAYS}}},
    "history_days": 30,
    "blocklist": [f"+37517{i:07d}" for i in range(1000)] + [f"+8{i:03d}*" for i in range(100)],
    "did_rules": {f"+37517388{i:04d}": {"default_extension": "150"} for i in range(100)},
}


class Lookup:
    crm = "retailcrm"

    async def find_responsible(self, phone_e164: str) -> Manager | None:
        return Manager("retailcrm", "7", "Ivan Petrov", "150")


async def router_with(rules: Rules) -> Router:
    lookups: list[ResponsibleLookup] = [Lookup()]

    async def source(_enterprise: str) -> list[ResponsibleLookup]:
        return lookups

    async def rules_of(_enterprise: str) -> Rules:
        return rules

    router = Router(source, default_region="BY", rules=rules_of)
    answer = await router.resolve("100", CALLER)
    assert answer.extension == "150", answer
    cached = router.cached("100", CALLER)
    assert cached is not None and cached.extension == "150", cached
    return router


def per_call_us(router: Router, n: int) -> float:
    cached = router.cached
    start = time.perf_counter()
    for _ in range(n):
        cached("100", CALLER)
    return (time.perf_counter() - start) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    plain, full = await router_with(parse({})), await router_with(parse(FULL))
    a: list[float] = []
    b: list[float] = []
    for _ in range(args.reps):  # interleaved
        a.append(per_call_us(plain, args.n))
        b.append(per_call_us(full, args.n))
    pa, pb = statistics.median(a), statistics.median(b)
    lines = [
        f"| cached answer | µs per call (median of {args.reps} × {args.n}) |",
        "| --- | --- |",
        f"| no rules | {pa:.2f} |",
        f"| full rule set | {pb:.2f} |",
        f"| **added by the rules** | **{pb - pa:.2f}** (budget 200) |",
    ]
    print("\n".join(lines))
    if args.write:
        args.write.write_text("\n".join(lines) + "\n")
    await plain.close()
    await full.close()


if __name__ == "__main__":
    asyncio.run(main())
