"""Admin pages: server time per page with 100k calls and 1M integration_logs rows for one enterprise.

Run alone: `python bench/admin_pages.py [--calls N] [--logs N] [--runs R] [--out bench/ADMIN.md]`. Needs the
PostgreSQL server binaries (it starts a throwaway cluster like the tests do).

The database is filled by SQL (generate_series): enterprise 100 gets `--calls` calls over ~100 days (a
third each in/out/internal, every 5th missed, 40 extensions), one RetailCRM delivery per call (1 % failed,
0.1 % dead) and `--logs` integration_logs rows (2 % errors, request/response JSON of a few hundred
bytes); a second enterprise gets a fifth as much, so every query has to pick its enterprise out.

Server time is measured by a middleware placed outermost on the agent's own app (the admin site, its
session/CSRF/CSP middleware, the templates): from the request entering the app to the response being
ready, HTML and JSON alike. Each page is fetched `--runs` times after two warm-up fetches.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from admin import site
from admin.auth import open_session
from agent.config.sections import AgentSection, AgiSection, Config, DatabaseSection, HttpSection
from agent.store import database
from agent.store.embedded import EmbeddedPostgres
from agent.web import keys
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics
from agent.web.server import create_app

FILL = """
INSERT INTO enterprises (number, name) VALUES ('100', 'Shop'), ('200', 'Other');
INSERT INTO user_internal_phones (enterprise_number, phone_number, display_name)
SELECT '100', (150 + g)::text, 'Manager ' || g FROM generate_series(0, 39) g;

INSERT INTO calls (call_id, enterprise_number, pbx, direction, phone, did, extensions, answered_by, result,
                   ring_seconds, talk_seconds, started_at, ended_at, details)
SELECT (1700000000 + e.off + g)::text || '.' || g, e.number, 'office', (ARRAY['in', 'out', 'internal'])[1 + g % 3],
       '+37529' || lpad((g % 50000)::text, 7, '0'), CASE WHEN g % 3 = 0 THEN '375173880000' END,
       ARRAY[(150 + g % 40)::text, (150 + (g + 7) % 40)::text],
       CASE WHEN g % 5 = 0 THEN NULL ELSE (150 + g % 40)::text END,
       CASE WHEN g % 5 = 0 THEN 'no_answer' ELSE 'answered' END, 5, 60,
       now() - g * e.step - interval '65 seconds', now() - g * e.step,
       '{"legs": [{"extension": "150", "talk_seconds": 60}]}'
FROM (VALUES ('100', $1::int, interval '86 seconds', 0), ('200', $1::int / 5, interval '430 seconds', 10000000))
     AS e(number, n, step, off), generate_series(1, e.n) g;

INSERT INTO deliveries (idempotency_key, enterprise_number, integration_type, kind, payload, status, attempts,
                        last_error, created_at, updated_at, delivered_at, next_attempt_at)
SELECT 'retailcrm:' || call_id || ':upload', enterprise_number, 'retailcrm', 'calls_upload',
       jsonb_build_object('call', jsonb_build_object('externalId', call_id, 'phone', phone, 'result', result)),
       CASE WHEN n % 1000 = 0 THEN 'dead' WHEN n % 100 = 0 THEN 'failed' ELSE 'done' END,
       1 + (n % 100 = 0)::int, CASE WHEN n % 100 = 0 THEN 'HTTP 400: Calls are not loaded' END,
       ended_at, ended_at, CASE WHEN n % 100 <> 0 THEN ended_at END, ended_at
FROM (SELECT *, row_number() OVER (ORDER BY enterprise_number, ended_at DESC) AS n FROM calls) c;

INSERT INTO integration_logs (enterprise_number, integration_type, event_type, request_data, response_data,
                              status, error_message, http_status, duration_ms, delivery_id, created_at)
SELECT e.number, CASE WHEN g % 4 = 0 THEN 'amocrm' ELSE 'retailcrm' END,
       (ARRAY['calls_upload', 'call_event', 'find_responsible', 'manager_lookup'])[1 + g % 4],
       jsonb_build_object('method', 'POST', 'url', 'https://shop.retailcrm.ru/api/v5/telephony/call/event',
                          'body', jsonb_build_object('phone', '+37529' || g, 'code', '150', 'type', 'in',
                                                     'hangupStatus', 'answered', 'externalPhone', '375173880000')),
       jsonb_build_object('status', 200, 'body', jsonb_build_object('success', g % 50 <> 0)),
       CASE WHEN g % 50 = 0 THEN 'error' ELSE 'success' END, CASE WHEN g % 50 = 0 THEN 'HTTP 500' END,
       CASE WHEN g % 50 = 0 THEN 500 ELSE 200 END, 20 + g % 30,
       CASE WHEN g % 10 = 0 AND e.number = '100' THEN g / 10 END, now() - g * e.step
FROM (VALUES ('100', $2::int, interval '8.6 seconds'), ('200', $2::int / 5, interval '43 seconds'))
     AS e(number, n, step), generate_series(1, e.n) g;
"""


def pages(call_id: str, day: str) -> list[tuple[str, str]]:
    e = "/admin/100"
    return [
        ("overview", f"{e}/overview"),
        ("overview .json", f"{e}/overview.json"),
        ("stats: 1 day", f"{e}/stats?days=1"),
        ("stats: 7 days", f"{e}/stats?days=7"),
        ("stats: 30 days", f"{e}/stats?days=30"),
        ("stats .json", f"{e}/stats.json"),
        ("calls", f"{e}/calls"),
        ("calls, 2nd page", "NEXT:calls"),
        ("calls, 20th page", "NEXT20:calls"),
        ("calls: in + missed", f"{e}/calls?direction=in&result=missed"),
        ("calls: extension 155", f"{e}/calls?extension=155"),
        ("calls: number", f"{e}/calls?number=%2B375290000777"),
        ("calls: national number", f"{e}/calls?number=80290000777"),
        ("calls: part of a number", f"{e}/calls?number=0000777"),
        ("calls: a common ending", f"{e}/calls?number=77"),
        ("calls: a day", f"{e}/calls?date={day}"),
        ("calls: no match", f"{e}/calls?extension=999"),
        ("calls .json", f"{e}/calls.json"),
        ("call page", f"{e}/calls/{call_id}"),
        ("call .json", f"{e}/calls/{call_id}.json"),
        ("log", f"{e}/log"),
        ("log, 20th page", "NEXT20:log"),
        ("log: errors", f"{e}/log?status=error"),
        ("log: amocrm errors", f"{e}/log?crm=amocrm&status=error"),
        ("log: event type", f"{e}/log?event_type=find_responsible"),
        ("log: one day", f"{e}/log?from={day}&to={day}"),
        ("log .json", f"{e}/log.json"),
        ("extensions", f"{e}/extensions"),
        ("instance", "/admin/instance"),
    ]


def timing(samples: list[float]) -> Middleware:
    @web.middleware
    async def timed(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        if isinstance(response, web.Response) and response.body is not None:
            samples.append(time.perf_counter() - started)
        return response

    return timed


async def resolve(http: aiohttp.ClientSession, url: str, base: str) -> str:
    """NEXT:calls / NEXT20:log: follow the `next` tokens 1 / 19 times to reach a deep page."""
    kind, _, page = url.partition(":")
    hops = 19 if kind == "NEXT20" else 1
    params: dict[str, str] = {}
    for _ in range(hops):
        async with http.get(f"{base}/admin/100/{page}.json", params=params) as resp:
            params = {"next": (await resp.json())["next"]}
    return f"/admin/100/{page}?{urlencode(params)}"


def scratch_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="pbx-bench-admin-"))
    root.chmod(0o711)  # the unprivileged postgres user passes through
    return root


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    root = scratch_dir()
    cluster = EmbeddedPostgres(root / "pg")
    await cluster.start()
    try:
        pool = await database.create_pool(cluster.dsn, 4, name="pbx-agent-bench")
        await database.migrate(pool)
        started = time.perf_counter()
        async with pool.acquire() as conn:
            for statement in FILL.split(";\n\n"):
                if "$1" in statement or "$2" in statement:
                    await conn.execute(statement.replace("$2::int", str(args.logs)).replace("$1::int", str(args.calls)))
                else:
                    await conn.execute(statement)
            await conn.execute("VACUUM ANALYZE")
        print(
            f"filled in {time.perf_counter() - started:.0f} s: {args.calls} + {args.calls // 5} calls, "
            f"{args.logs} + {args.logs // 5} log rows",
            file=sys.stderr,
        )
        rows = await run_pages(pool, root, args.runs)
        await pool.close()
    finally:
        await cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    table = render(rows, args)
    print(table)
    if args.out:
        args.out.write_text(table)


async def run_pages(pool: database.Pool, root: Path, runs: int) -> list[tuple[str, int, float, float, float]]:
    samples: list[float] = []
    app = create_app()
    app.middlewares.insert(0, timing(samples))
    config = Config(
        path=root / "agent.toml",
        agent=AgentSection(state_dir=root / "state"),
        database=DatabaseSection(),
        http=HttpSection(),
        agi=AgiSection(),
        pbx=(),
    )
    app[keys.CONFIG], app[keys.HEALTH], app[keys.METRICS], app[keys.POOL] = config, HealthRegistry(), Metrics(), pool
    app.add_subapp(site.PREFIX, site.create_app(b"\x01" * 32))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    cookie = await open_session(pool, None, "admin", "bench")
    call_id = await pool.fetchval(
        "SELECT call_id FROM calls WHERE enterprise_number = '100' ORDER BY listed_at DESC OFFSET 500 LIMIT 1"
    )
    day = str(await pool.fetchval("SELECT (now() - interval '30 days')::date"))
    rows = []
    try:
        async with aiohttp.ClientSession(cookies={"pbx_admin": cookie}) as http:
            for name, url in pages(call_id, day):
                if url.startswith("NEXT"):
                    url = await resolve(http, url, base)
                for _ in range(2):
                    async with http.get(base + url) as resp:
                        assert resp.status == 200, (name, resp.status, await resp.text())
                        size = len(await resp.read())
                samples.clear()
                for _ in range(runs):
                    async with http.get(base + url) as resp:
                        await resp.read()
                ms = sorted(s * 1000 for s in samples)
                rows.append((name, size, statistics.median(ms), ms[int(len(ms) * 0.95) - 1], ms[-1]))
                print(f"{name}: {rows[-1][2]:.1f} ms", file=sys.stderr)
    finally:
        await runner.cleanup()
    return rows


def render(rows: list[tuple[str, int, float, float, float]], args: argparse.Namespace) -> str:
    lines = [
        "## `admin_pages.py`: admin pages, server time",
        "",
        f"{args.calls:,} calls and {args.logs:,} integration_logs rows for the enterprise shown (plus a fifth as "
        "much for another), one delivery per call; the agent's own app with the admin middleware; "
        f"{args.runs} fetches per page after two warm-ups. Target: every page under 100 ms.",
        "",
        "| page | HTML/JSON bytes | p50 ms | p95 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, size, p50, p95, top in rows:
        lines.append(f"| {name} | {size:,} | {p50:.1f} | {p95:.1f} | {top:.1f} |")
    worst = max(r[4] for r in rows)
    lines += ["", f"Slowest single fetch: {worst:.1f} ms.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    asyncio.run(main())
