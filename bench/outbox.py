"""Outbox delivery: deliveries/s to the fake RetailCRM on loopback, and hangup -> request latency.

Run alone: `python bench/outbox.py [--calls N] [--rate R] [--seconds S]`. Needs the PostgreSQL server
binaries (it starts a throwaway cluster like the tests do).

Measured in one run against the same fake CRM (aiohttp on loopback, in a process of its own, as a real
CRM would be):

- bare:    RetailCrmClient.send straight from memory, as many concurrent requests as the outbox
           allows (16), no database: what the HTTP exchange alone costs.
- outbox:  the same calls through Planner -> Outbox (PostgreSQL rows, SKIP LOCKED claims, outcome
           bookkeeping, integration_logs) -> the same client. Each ended call is 2 deliveries: the
           hangup pop-up and the call-history upload (batched up to 50 per request).
- latency: ended calls put into the planner at `--rate` calls/s for `--seconds` s; for each call the
           time from `Planner.put` to the fake receiving its upload. p50/p99.

RetailCRM's own limit (40 requests/s per account for /telephony) is switched off here: it would
measure the CRM's quota, not the outbox. With it on, one account gets 40 requests/s, i.e. up to
2,000 uploads/s in batches of 50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.delivery.dispatch import CrmDispatcher
from agent.delivery.integrations import Integrations
from agent.delivery.outbox import Outbox, OutboxPolicy
from agent.delivery.planner import Planner
from agent.store import database, enterprises
from agent.store.embedded import EmbeddedPostgres
from agent.store.secretbox import SecretBox
from agent.tracking.event import CallEvent
from connectors.http import RateLimiter, make_client
from connectors.registry import connectors, secret_fields
from connectors.retailcrm.plan import plan
from connectors.retailcrm.settings import parse
from tests.waiting import until

KEY = "BenchKey0123456789abcdefghijklmn"
ENTERPRISE = "100"
CONCURRENCY = 16


UPLOADS_ONLY = False  # set by --uploads-only: no pop-ups, only the batched call history


def ended(i: int, at: datetime) -> CallEvent:
    return CallEvent(
        event="ended",
        call_id=f"{1_800_000_000 + i}.{i}",
        enterprise=ENTERPRISE,
        direction="in",
        phone="+375291234567",
        did="375173880000",
        extension="150",
        at=at,
        extensions=("150",),
        answered_by="150",
        result="answered",
        ring_seconds=3.0,
        talk_seconds=8.0,
        started_at=at - timedelta(seconds=11),
        ended_at=at,
    )


def unlimited() -> RateLimiter:
    return RateLimiter(lambda _path: ("all", 1e9))


def settings_json(url: str) -> dict[str, object]:
    extra = {"popup_in": False, "popup_out": False, "popup_hangup": False} if UPLOADS_ONLY else {}
    return {"domain": url, "api_key": KEY, "timezone": "Europe/Minsk", **extra}


async def bare(url: str, calls: int) -> float:
    settings = parse(settings_json(url))
    now = datetime.now(UTC)
    deliveries = [d for i in range(calls) for d in plan(ended(i, now), settings)]
    popups = [[d] for d in deliveries if d.kind == "call_event"]
    uploads = [d for d in deliveries if d.kind == "calls_upload"]
    batches = popups + [uploads[i : i + 50] for i in range(0, len(uploads), 50)]
    from connectors.retailcrm.client import RetailCrmClient

    async with make_client() as http:
        client = RetailCrmClient(settings, http)
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(batch: list) -> None:  # type: ignore[type-arg]
            async with slots:
                await client.send(batch)

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in batches))
        return len(deliveries) / (time.perf_counter() - started)


async def drained(pool: database.Pool, expected: int) -> None:
    async def done() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'done'") >= expected)

    await until(done, within=600, every=0.01)


async def through_outbox(pool: database.Pool, planner: Planner, calls: int, offset: int) -> float:
    now = datetime.now(UTC)
    per_call = 1 if UPLOADS_ONLY else 2
    done_before = await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'done'")
    started = time.perf_counter()
    for i in range(calls):
        planner.put(ended(offset + i, now))
    await drained(pool, done_before + per_call * calls)
    return per_call * calls / (time.perf_counter() - started)


async def latency(pool: database.Pool, planner: Planner, rate: float, seconds: float, offset: int) -> dict[str, float]:
    put_at: dict[str, float] = {}
    n = int(rate * seconds)
    uploads_sql = "SELECT count(*) FROM deliveries WHERE kind = 'calls_upload' AND status = 'done'"
    uploads_before = await pool.fetchval(uploads_sql)
    start = time.monotonic()
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        event = ended(offset + i, datetime.now(UTC))
        put_at[event.call_id] = time.monotonic()
        planner.put(event)

    async def uploaded() -> bool:
        return bool(await pool.fetchval(uploads_sql) >= uploads_before + n)

    await until(uploaded, within=60, every=0.01)
    return put_at


async def timed_lookups(integrations: Integrations, n: int, every: float) -> list[float]:
    """`n` smart-redirect lookups through the agent's own path (Integrations.lookups), ms each."""
    (lookup,) = await integrations.lookups(ENTERPRISE)
    took: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        await lookup.find_responsible(f"+37529{7_000_000 + i}")
        took.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(every)
    return took


async def lookups_during_backlog(pool: database.Pool, url: str, backlog: int) -> None:
    """`--lookup-backlog N`: RetailCRM's real rate limits on (40 requests/s for /telephony), N pop-ups queued in
    the outbox; lookups timed before (idle) and while the backlog drains, in one run."""
    global UPLOADS_ONLY
    UPLOADS_ONLY = False
    async with make_client() as http:
        box = SecretBox(os.urandom(32), secret_fields())
        await enterprises.put(pool, ENTERPRISE, "Bench")
        await enterprises.put_integration(pool, box, ENTERPRISE, "retailcrm", parse(settings_json(url)).to_json())
        integrations = Integrations(pool, box, connectors(), http)  # its limiter: RetailCRM's real rates
        outbox = Outbox(pool, CrmDispatcher(integrations, concurrency=CONCURRENCY), policy=OutboxPolicy())
        idle = await timed_lookups(integrations, 30, 0.05)
        settings = parse(settings_json(url))
        now = datetime.now(UTC)
        deliveries = [d for i in range(backlog) for d in plan(ended(i, now), settings) if d.kind == "call_event"]
        await outbox.enqueue(deliveries[:backlog])
        task = asyncio.create_task(outbox.run())
        try:
            await asyncio.sleep(1.0)  # the backlog drains at the account's rate from now on
            busy = await timed_lookups(integrations, 60, 0.05)
            done = await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'done'")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    left = backlog - int(done)
    print(f"backlog: {backlog} pop-ups queued; {left} still waiting when the last lookup was timed")
    for name, values in (("idle", idle), ("backlog", busy)):
        values = sorted(values)
        print(
            f"| {name} | {statistics.median(values):.1f} | {values[int(len(values) * 0.99) - 1]:.1f} | "
            f"{values[-1]:.1f} |"
        )
    print(f"added by the backlog at p50: {statistics.median(busy) - statistics.median(idle):+.1f} ms")


async def start_fake(port: int, out: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("fake_crm_process.py")),
        KEY,
        str(port),
        str(out),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    await proc.stdout.readline()  # "ready"
    return proc


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="pbx-agent-bench-"))
    await asyncio.to_thread(root.chmod, 0o711)
    cluster = EmbeddedPostgres(root / "pg")
    await cluster.start()
    pool = await database.create_pool(cluster.dsn, 20, name="pbx-agent-bench")
    try:
        await database.migrate(pool)
        port, arrivals = free_port(), root / "arrivals.txt"
        fake = await start_fake(port, arrivals)
        url = f"http://127.0.0.1:{port}"
        if args.lookup_backlog:
            try:
                await lookups_during_backlog(pool, url, args.lookup_backlog)
            finally:
                fake.terminate()
                await fake.wait()
            return
        async with make_client() as http:
            box = SecretBox(os.urandom(32), secret_fields())
            await enterprises.put(pool, ENTERPRISE, "Bench")
            settings = parse(settings_json(url)).to_json()
            await enterprises.put_integration(pool, box, ENTERPRISE, "retailcrm", settings)
            integrations = Integrations(pool, box, connectors(), http)
            dispatcher = CrmDispatcher(integrations, concurrency=CONCURRENCY, limiter=unlimited())
            outbox = Outbox(pool, dispatcher, policy=OutboxPolicy(concurrency=CONCURRENCY))
            planner = Planner(integrations, outbox)
            tasks = [asyncio.create_task(outbox.run()), asyncio.create_task(planner.run())]
            try:
                await through_outbox(pool, planner, 200, 10_000_000)  # warm up
                rates: dict[str, list[float]] = {"bare": [], "outbox": []}
                for rep in range(args.reps):
                    rates["bare"].append(await bare(url, args.calls))
                    rates["outbox"].append(await through_outbox(pool, planner, args.calls, rep * args.calls))
                put_at = await latency(pool, planner, args.rate, args.seconds, 20_000_000)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                fake.terminate()
                await fake.wait()
        arrived: dict[str, float] = {}
        for line in arrivals.read_text().splitlines():
            call_id, at = line.split()
            arrived.setdefault(call_id, float(at))
        lat = sorted((arrived[c] - put_at[c]) * 1000 for c in put_at)
        b, o = statistics.median(rates["bare"]), statistics.median(rates["outbox"])
        mix = "uploads only" if UPLOADS_ONLY else "hangup pop-up + upload per call"
        print(f"calls per rep: {args.calls} ({mix}), reps: {args.reps}")
        print(f"| bare client | {b:,.0f} deliveries/s |")
        print(f"| outbox      | {o:,.0f} deliveries/s | {o / b:.0%} of bare |")
        print(
            f"latency hangup -> upload at the fake, {args.rate:g} calls/s for {args.seconds:g} s: "
            f"p50 {statistics.median(lat):.1f} ms, p99 {lat[int(len(lat) * 0.99) - 1]:.1f} ms, "
            f"max {lat[-1]:.1f} ms"
        )
    finally:
        await pool.close()
        await cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--uploads-only", action="store_true")
    parser.add_argument("--lookup-backlog", type=int, default=0, help="only: lookups during N queued pop-ups")
    arguments = parser.parse_args()
    UPLOADS_ONLY = arguments.uploads_only
    asyncio.run(main(arguments))
