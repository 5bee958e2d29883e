"""smart-redirect FastAGI: requests/s and latency of our server against a bare asyncio FastAGI server.

Run alone from the repo root: `python bench/agi.py [--seconds S] [--reps N] [--rate R] [--write bench/AGI.md]`.

Every server runs in its own process; this process is the load client and speaks like Asterisk (sends the
recorded request, answers each command with `200 result=1`, sends `HANGUP` after the server's EOF).

- **bare**: asyncio streams; read the request up to the empty line, send one `SET VARIABLE`, read the
  reply, close. No parsing, no routing: the floor any FastAGI server in Python pays.
- **ours (hit)**: `agent.redirect.server.AgiServer` + `agent.redirect.router.Router`, the caller's entry
  cached (one warm-up request first); the server sets all seven variables, so it pays seven command round
  trips to bare's one.
- **ours (miss)**: every request from a new number; the router asks a fake CRM (a third process, aiohttp,
  answering after `--crm-ms`) through an aiohttp lookup shaped like RetailCRM's: one request whose answer
  names the manager and the customer (`telephony/manager` with `details=1`).
- **ours (amoCRM-shaped miss)**: the same with amoCRM's shape: the contact search (the caller's name, the
  contact's responsible user and lead ids), then the leads' statuses, each answering after `--crm-ms`, and
  the real choice of the newest open deal (`connectors.amocrm.deals.newest_open_owner`); so its CRM time is
  twice `--crm-ms`.
- **before (hit, miss)**: with `--baseline REV`, the same two measured on the server of git revision REV
  (checked out with `git archive` into a temporary directory, its own `bench/agi.py --role ours`), in the
  same run, interleaved: what a change costs, with the machine's noise the same on both sides.

(a) Saturation: closed loop at concurrency 1, 10, 100 for `--seconds` each, interleaved, `--reps` times,
medians. (b) Latency: open loop at `--rate` requests/s (a new connection every 1/rate s, whatever the
server does) for `--seconds`, cache hit; p50/p99/max from connect to the server's EOF (the whole
session as Asterisk sees it), and the worst time to the first command (what the deadline bounds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REQUEST_TEMPLATE = (
    "agi_network: yes\nagi_network_script: smart-redirect\nagi_request: agi://127.0.0.1:4573/smart-redirect\n"
    "agi_channel: PJSIP/provider-00000000\nagi_language: en\nagi_type: PJSIP\nagi_uniqueid: 1795481440.0\n"
    "agi_version: 22.10.1\nagi_callerid: {caller}\nagi_calleridname: unknown\nagi_callingpres: 0\n"
    "agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: 375173880000\nagi_rdnis: unknown\n"
    "agi_context: from-trunk\nagi_extension: 375173880000\nagi_priority: 3\nagi_enhanced: 0.0\n"
    "agi_accountcode: \nagi_threadid: 139749110617792\n\n"
)
HIT_CALLER = "+375291234567"
COMMANDS = 7  # SET VARIABLE lines per answer (agent.redirect.wire.commands_for); "bare ×N" sends as many
CUSTOMER = {"id": 31, "firstName": "Мария", "lastName": "Иванова"}
LEADS = [  # the amoCRM-shaped CRM's leads for every contact: two closed, the newest open one owned by user 8
    {"id": 1, "status_id": 40002, "responsible_user_id": 9, "created_at": 1_760_000_000},
    {"id": 2, "status_id": 40002, "responsible_user_id": 8, "created_at": 1_760_000_100},
    {"id": 3, "status_id": 142, "responsible_user_id": 1, "created_at": 1_760_000_200},
    {"id": 4, "status_id": 143, "responsible_user_id": 1, "created_at": 1_760_000_300},
]


def request_for(caller: str) -> bytes:
    return REQUEST_TEMPLATE.format(caller=caller).encode()


# --- the servers (each in its own process) ----------------------------------------------------------------


async def bare_server(port: int, commands: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\n\n")
            for _ in range(commands):
                writer.write(b'SET VARIABLE REDIRECT_EXTEN "150"\n')
                await reader.readline()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print("READY", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


async def ours_server(port: int, crm_url: str, deadline_ms: int, shape: str) -> None:
    import aiohttp

    from agent.config.checks import Address
    from agent.config.sections import AgiSection
    from agent.redirect.router import Router
    from agent.redirect.server import AgiServer
    from agent.web.health import HealthRegistry
    from connectors.amocrm.deals import newest_open_owner
    from connectors.base import Caller, Manager, ResponsibleLookup
    from connectors.retailcrm.models import parse_customer_name

    session = aiohttp.ClientSession()

    async def get(path: str, **params: str) -> dict[str, object]:
        async with session.get(f"{crm_url}{path}", params=params) as resp:
            resp.raise_for_status()
            body: dict[str, object] = await resp.json()
            return body

    class RetailShaped:
        crm = "retailcrm"

        async def find_responsible(self, phone_e164: str) -> Caller | None:
            body = await get("/manager", phone=phone_e164, details="1")
            found = body.get("manager")
            manager = Manager(self.crm, str(found["id"]), found["name"], "150") if isinstance(found, dict) else None
            return Caller(self.crm, parse_customer_name(body), manager)

    class AmoShaped:
        crm = "amocrm"

        async def find_responsible(self, phone_e164: str) -> Caller | None:
            contact = await get("/contacts", query=phone_e164[-10:])
            uid = contact["responsible_user_id"]
            ids = contact["lead_ids"]
            if isinstance(ids, list) and ids:
                leads = await get("/leads", **{f"filter[id][{i}]": str(x) for i, x in enumerate(ids)})
                uid = newest_open_owner(leads["leads"]) or uid  # type: ignore[arg-type]
            manager = Manager(self.crm, str(uid), "Olga Sidorova", {"7": "150", "8": "151"}.get(str(uid)))
            return Caller(self.crm, str(contact["name"]), manager)

    lookups: list[ResponsibleLookup] = [AmoShaped() if shape == "amocrm" else RetailShaped()]

    async def source(enterprise: str) -> list[ResponsibleLookup]:
        return lookups

    router = Router(source, default_region="BY")
    server = AgiServer(
        AgiSection(Address("127.0.0.1", port), deadline_ms), router, HealthRegistry(), {"127.0.0.1": "100"}
    )
    await server.start()
    print("READY", server.port, flush=True)
    try:
        await asyncio.Future()
    finally:
        await server.stop()
        await router.close()
        await session.close()


async def crm_server(port: int, latency_ms: float) -> None:
    from aiohttp import web

    async def manager(request: web.Request) -> web.Response:
        await asyncio.sleep(latency_ms / 1000)
        body = {"success": True, "manager": {"id": "7", "name": "Ivan Petrov"}}
        if request.query.get("details") == "1":
            body["customer"] = CUSTOMER
        return web.json_response(body)

    async def contacts(request: web.Request) -> web.Response:
        await asyncio.sleep(latency_ms / 1000)
        return web.json_response({"name": "Мария Иванова", "responsible_user_id": 7, "lead_ids": [1, 2, 3, 4]})

    async def leads(request: web.Request) -> web.Response:
        await asyncio.sleep(latency_ms / 1000)
        wanted = {int(v) for k, v in request.query.items() if k.startswith("filter[id]")}
        return web.json_response({"leads": [lead for lead in LEADS if lead["id"] in wanted]})

    app = web.Application()
    app.router.add_get("/manager", manager)
    app.router.add_get("/contacts", contacts)
    app.router.add_get("/leads", leads)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    print("READY", runner.addresses[0][1], flush=True)
    await asyncio.Future()


# --- the client -------------------------------------------------------------------------------------------


@dataclass
class Session:
    total_s: float
    first_s: float
    commands: int


class _Asterisk(asyncio.Protocol):
    """The client side of one FastAGI session, as Asterisk runs it (a Protocol: cheap, so the client is
    not what limits the rate)."""

    def __init__(self, request: bytes, done: asyncio.Future[Session], started: float) -> None:
        self.request = request
        self.done = done
        self.started = started
        self.first = 0.0
        self.commands = 0
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        while (nl := self.buf.find(b"\n")) >= 0:
            self.buf = self.buf[nl + 1 :]
            if not self.commands:
                self.first = time.perf_counter() - self.started
            self.commands += 1
            self.transport.write(b"200 result=1\n")

    def eof_received(self) -> bool:
        assert self.transport is not None
        self._finish()
        self.transport.write(b"HANGUP\n")
        self.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(Session(time.perf_counter() - self.started, self.first, self.commands))


async def session(port: int, request: bytes) -> Session:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Session] = loop.create_future()
    started = time.perf_counter()
    await loop.create_connection(lambda: _Asterisk(request, done, started), "127.0.0.1", port)
    return await done


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    count: int = 0
    seconds: float = 0.0
    totals: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    errors: int = 0
    lag_max: float = 0.0
    server_cpu_s: float = 0.0

    @property
    def cpu_us(self) -> float:
        """Server CPU time per request, µs."""
        return self.server_cpu_s / self.count * 1e6 if self.count else float("nan")

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


async def closed_loop(port: int, pid: int, concurrency: int, seconds: float, next_request: Callable[[], bytes]) -> Run:
    run = Run()
    cpu_before = cpu_seconds(pid)
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            try:
                s = await session(port, next_request())
            except OSError:
                run.errors += 1
                continue
            if s.commands == 0:
                run.errors += 1
                continue
            run.count += 1
            run.totals.append(s.total_s)
            run.firsts.append(s.first_s)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    run.seconds = time.perf_counter() - started
    run.server_cpu_s = cpu_seconds(pid) - cpu_before
    return run


async def open_loop(port: int, rate: float, seconds: float, next_request: Callable[[], bytes]) -> Run:
    run = Run()
    n = int(rate * seconds)
    loop = asyncio.get_running_loop()

    async def one() -> None:
        try:
            s = await session(port, next_request())
        except OSError:
            run.errors += 1
            return
        if s.commands == 0:
            run.errors += 1
            return
        run.count += 1
        run.totals.append(s.total_s)
        run.firsts.append(s.first_s)

    started = loop.time()
    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            due = started + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            run.lag_max = max(run.lag_max, loop.time() - due)
            tg.create_task(one())
    run.seconds = loop.time() - started
    return run


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Proc:
    def __init__(self, *args: str, tree: Path | None = None) -> None:
        """This file with `args` in a process of its own; with `tree`, that checkout's own bench/agi.py and code."""
        root = tree or Path(__file__).resolve().parents[1]
        env = dict(os.environ, PYTHONPATH=str(root))
        script = root / "bench" / "agi.py"
        self.proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            self.proc.kill()
            raise SystemExit(f"server {args} did not start")
        self.port = int(line[1])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def warmed(port: int, callers: list[bytes]) -> None:
    """Every caller asked once (50 at a time), then time for the lookups queued behind the 64 slots to finish."""
    for i in range(0, len(callers), 50):
        await asyncio.gather(*(session(port, c) for c in callers[i : i + 50]))
    if len(callers) > 1:
        await asyncio.sleep(len(callers) / 64 * 0.2 + 1)


def checkout(rev: str, into: Path) -> Path:
    """Revision `rev` of this repository as files under `into` (git archive: no worktree, no index touched)."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


async def drive(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="agi-bench-base-") as tmp:
        base_tree = checkout(args.baseline, Path(tmp)) if args.baseline else None
        return await _drive(args, base_tree)


async def _drive(args: argparse.Namespace, base_tree: Path | None) -> str:
    crm = Proc("--role", "crm", "--crm-ms", str(args.crm_ms))
    bare = Proc("--role", "bare")
    bare4 = Proc("--role", "bare4")
    server = ("--role", "ours", "--crm-url", f"http://127.0.0.1:{crm.port}", "--deadline-ms", str(args.deadline_ms))
    ours = Proc(*server)
    amo = Proc(*server, "--shape", "amocrm")
    base = Proc(*server, tree=base_tree) if base_tree is not None else None
    try:
        callers = [request_for(HIT_CALLER)] + [request_for(f"+37529{2_000_000 + i}") for i in range(args.callers - 1)]
        warm = await session(ours.port, callers[0])
        assert warm.commands == COMMANDS, warm
        for proc in (ours, *([base] if base else [])):
            await warmed(proc.port, callers)
        turn = itertools.cycle(callers)

        def hit() -> bytes:
            return next(turn)

        counter = iter(range(1_000_000, 9_999_999))

        def miss() -> bytes:
            return request_for(f"+37533{next(counter)}")

        kinds: dict[str, tuple[Proc, Callable[[], bytes]]] = {
            "bare": (bare, hit),
            "bare4": (bare4, hit),
            "hit": (ours, hit),
            "miss": (ours, miss),
            "amo": (amo, miss),
        }
        if base is not None:
            kinds |= {"b-hit": (base, hit), "b-miss": (base, miss)}
        sat: dict[tuple[str, int], list[Run]] = {}
        for rep in range(args.reps):
            for conc in (1, 10, 100):
                for kind, (proc, make) in kinds.items():
                    if kind == "amo" and conc == 100:
                        # ~1,400 misses/s against lookups of 300 ms: the queued lookups would still be draining
                        # (64 at a time) when the next repetition's c=1 starts, which would then measure them
                        continue
                    run = await closed_loop(proc.port, proc.proc.pid, conc, args.seconds, make)
                    sat.setdefault((kind, conc), []).append(run)
                    print(
                        f"rep {rep + 1} c={conc:<3} {kind:<5} {run.rps:8.0f} req/s  cpu {run.cpu_us:5.0f} µs/req"
                        f"  p50 {pct(run.totals, 0.5) * 1e3:6.2f} ms  p99 {pct(run.totals, 0.99) * 1e3:6.2f} ms"
                        f"  first max {max(run.firsts) * 1e3:6.1f} ms  errors {run.errors}",
                        file=sys.stderr,
                    )
        lat: dict[str, list[Run]] = {}
        open_kinds = [("bare", bare.port), ("hit", ours.port)] + ([("b-hit", base.port)] if base else [])
        for rep in range(args.reps):
            for kind, port in open_kinds:
                run = await open_loop(port, args.rate, args.seconds, hit)
                lat.setdefault(kind, []).append(run)
                print(
                    f"rep {rep + 1} open {args.rate:.0f}/s {kind:<4} p50 {pct(run.totals, 0.5) * 1e3:.2f} ms "
                    f"p99 {pct(run.totals, 0.99) * 1e3:.2f} ms max {max(run.totals) * 1e3:.2f} ms "
                    f"lag max {run.lag_max * 1e3:.2f} ms errors {run.errors}",
                    file=sys.stderr,
                )
        return report(args, sat, lat) + (against(args, sat, lat) if base is not None else "")
    finally:
        for p in (ours, amo, *([base] if base else []), bare, bare4, crm):
            p.stop()


async def burst(args: argparse.Namespace) -> str:
    """`--burst N`: N new callers at the same instant (each a cache miss), `--reps` times against a fresh
    server each time; the time to the first command (what the deadline bounds) for every one of them."""
    crm = Proc("--role", "crm", "--crm-ms", str(args.crm_ms))
    rows: list[str] = []
    try:
        for rep in range(args.reps):
            ours = Proc(
                "--role", "ours", "--crm-url", f"http://127.0.0.1:{crm.port}", "--deadline-ms", str(args.deadline_ms)
            )
            try:
                started = time.perf_counter()
                sessions = await asyncio.gather(
                    *(session(ours.port, request_for(f"+37544{rep}{i:06d}")) for i in range(args.burst)),
                    return_exceptions=True,
                )
                wall = time.perf_counter() - started
            finally:
                ours.stop()
            done = [s for s in sessions if isinstance(s, Session) and s.commands]
            firsts = [s.first_s * 1e3 for s in done]
            rows.append(
                f"| {rep + 1} | {len(done)} of {args.burst} | {pct(firsts, 0.5):.0f} | {pct(firsts, 0.99):.0f} | "
                f"{max(firsts, default=float('nan')):.0f} | {wall * 1e3:.0f} |"
            )
            print(rows[-1], file=sys.stderr)
    finally:
        crm.stop()
    head = (
        f"`python bench/agi.py --burst {args.burst} --reps {args.reps} --crm-ms {args.crm_ms:g}`; deadline "
        f"{args.deadline_ms} ms; {os.cpu_count()} CPUs, the server, the CRM and this client in three processes.\n\n"
        "| rep | answered | first command p50 ms | p99 ms | max ms | all answered after ms |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    return head + "\n".join(rows) + "\n"


def report(args: argparse.Namespace, sat: dict[tuple[str, int], list[Run]], lat: dict[str, list[Run]]) -> str:
    def med(runs: list[Run], f: Callable[[Run], float]) -> float:
        return statistics.median(f(r) for r in runs)

    def rps(runs: list[Run]) -> float:
        return med(runs, lambda r: r.rps)

    def cpu(runs: list[Run]) -> float:
        return med(runs, lambda r: r.cpu_us)

    def cell(runs: list[Run]) -> str:
        return (
            f"{rps(runs):,.0f} ({med(runs, lambda r: pct(r.totals, 0.5)) * 1e3:.2f} / "
            f"{med(runs, lambda r: pct(r.totals, 0.99)) * 1e3:.2f})"
        )

    worst_first = max(max(r.firsts) for runs in [*sat.values(), *lat.values()] for r in runs if r.firsts)
    errors = sum(r.errors for runs in [*sat.values(), *lat.values()] for r in runs)
    lines = [
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, loopback; "
        f"`python bench/agi.py --seconds {args.seconds:g} --reps {args.reps} --rate {args.rate:g} "
        f"--crm-ms {args.crm_ms:g} --callers {args.callers}"
        + (f" --baseline {args.baseline}" if args.baseline else "")
        + f"`; deadline {args.deadline_ms} ms; medians of {args.reps} interleaved runs.",
        "",
        "**(a) Saturation, closed loop**: requests/s (session latency p50 / p99, ms)",
        "",
        f"| concurrency | bare (1 command) | bare ×{COMMANDS} commands | ours, cache hit ({COMMANDS} commands) | "
        f"hit / bare | hit / bare ×{COMMANDS} | ours, cache miss (CRM "
        f"{args.crm_ms:g} ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for conc in (1, 10, 100):
        b, b4, h, m = (sat[(k, conc)] for k in ("bare", "bare4", "hit", "miss"))
        lines.append(
            f"| {conc} | {cell(b)} | {cell(b4)} | {cell(h)} | **{rps(h) / rps(b):.0%}** | "
            f"{rps(h) / rps(b4):.0%} | {cell(m)} |"
        )
    lines += [
        "",
        "Server CPU per request (µs, user + system, from /proc; includes the kernel's TCP work):",
        "",
        f"| concurrency | bare | bare ×{COMMANDS} | ours, cache hit | ours, cache miss |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for conc in (1, 10, 100):
        b, b4, h, m = (sat[(k, conc)] for k in ("bare", "bare4", "hit", "miss"))
        lines.append(f"| {conc} | {cpu(b):.0f} | {cpu(b4):.0f} | {cpu(h):.0f} | {cpu(m):.0f} |")
    miss1, amo1 = sat[("miss", 1)], sat[("amo", 1)]
    over = med(miss1, lambda r: pct(r.totals, 0.5)) * 1e3 - args.crm_ms
    over99 = med(miss1, lambda r: pct(r.totals, 0.99)) * 1e3 - args.crm_ms
    amo50 = med(amo1, lambda r: pct(r.totals, 0.5)) * 1e3 - 2 * args.crm_ms
    amo99 = med(amo1, lambda r: pct(r.totals, 0.99)) * 1e3 - 2 * args.crm_ms
    lines += [
        "",
        f"A miss at concurrency 1 costs the CRM's {args.crm_ms:g} ms + **{over:.1f} ms** at p50 "
        f"(+ {over99:.1f} ms at p99), HTTP client and {COMMANDS} command round trips included. "
        f"amoCRM-shaped (contact, then its leads: the CRM's 2 × {args.crm_ms:g} ms): "
        f"+ **{amo50:.1f} ms** at p50 (+ {amo99:.1f} ms at p99); at concurrency 10: {cell(sat[('amo', 10)])}.",
        "",
        f"**(b) Latency, open loop at {args.rate:g} requests/s, cache hit** (ms, from connect to the server's EOF)",
        "",
        "| server | p50 | p99 | max | first command, max |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, label in (("bare", "bare (1 command)"), ("hit", f"ours, cache hit ({COMMANDS} commands)")):
        runs = lat[kind]
        lines.append(
            f"| {label} | {med(runs, lambda r: pct(r.totals, 0.5)) * 1e3:.2f} | "
            f"{med(runs, lambda r: pct(r.totals, 0.99)) * 1e3:.2f} | {med(runs, lambda r: max(r.totals)) * 1e3:.2f} | "
            f"{med(runs, lambda r: max(r.firsts)) * 1e3:.2f} |"
        )
    lag = max(r.lag_max for runs in lat.values() for r in runs)
    lines += [
        "",
        f"Worst time to the first command over every run: **{worst_first * 1e3:.1f} ms** "
        f"(deadline {args.deadline_ms} ms); failed sessions: {errors}; worst client scheduling lag in the "
        f"open loop: {lag * 1e3:.1f} ms.",
    ]
    return "\n".join(lines) + "\n"


def against(args: argparse.Namespace, sat: dict[tuple[str, int], list[Run]], lat: dict[str, list[Run]]) -> str:
    """The build measured against `--baseline` in the same run: ratios, after / before."""

    def med(runs: list[Run], f: Callable[[Run], float]) -> float:
        return statistics.median(f(r) for r in runs)

    def p(q: float) -> Callable[[Run], float]:
        return lambda r: pct(r.totals, q) * 1e3

    def cpu(r: Run) -> float:
        return r.cpu_us

    crm = args.crm_ms

    rows: list[tuple[str, float, float]] = [
        (f"cache hit, open loop {args.rate:g}/s: p50 ms", med(lat["b-hit"], p(0.5)), med(lat["hit"], p(0.5))),
        (f"cache hit, open loop {args.rate:g}/s: **p99** ms", med(lat["b-hit"], p(0.99)), med(lat["hit"], p(0.99))),
    ]
    for conc in (1, 10, 100):
        b, h = sat[("b-hit", conc)], sat[("hit", conc)]
        rows += [
            (f"cache hit, closed loop c={conc}: p99 ms", med(b, p(0.99)), med(h, p(0.99))),
            (f"cache hit, closed loop c={conc}: requests/s", med(b, lambda r: r.rps), med(h, lambda r: r.rps)),
            (f"cache hit, closed loop c={conc}: server CPU µs/request", med(b, cpu), med(h, cpu)),
        ]
    for conc in (1, 10):
        b, m = sat[("b-miss", conc)], sat[("miss", conc)]
        rows += [
            (f"miss c={conc}: p50 over the CRM's {crm:g} ms", med(b, p(0.5)) - crm, med(m, p(0.5)) - crm),
            (f"miss c={conc}: p99 over the CRM's {crm:g} ms", med(b, p(0.99)) - crm, med(m, p(0.99)) - crm),
        ]
    lines = [
        "",
        f"**(c) Against `{args.baseline}` (the build before), same run, interleaved** (medians of {args.reps}):",
        "",
        "| measure | before | after | after / before |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | {b:,.2f} | {a:,.2f} | {a / b:.0%} |" for name, b, a in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("client", "bare", "bare4", "ours", "crm"), default="client")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--crm-ms", type=float, default=150.0)
    parser.add_argument("--crm-url", default="")
    parser.add_argument("--deadline-ms", type=int, default=800)
    parser.add_argument("--write", type=Path, help="write the results table (markdown) to this file")
    parser.add_argument("--burst", type=int, default=0, help="only N new callers at once (cache misses)")
    parser.add_argument("--shape", choices=("retailcrm", "amocrm"), default="retailcrm", help="the lookup (ours)")
    parser.add_argument("--baseline", help="also measure the server of this git revision, in the same run")
    parser.add_argument("--callers", type=int, default=1, help="cache hits cycle over this many cached callers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runners: dict[str, Callable[[], Awaitable[object]]] = {
        "bare": lambda: bare_server(0, 1),
        "bare4": lambda: bare_server(0, COMMANDS),
        "ours": lambda: ours_server(0, args.crm_url, args.deadline_ms, args.shape),
        "crm": lambda: crm_server(0, args.crm_ms),
    }
    if args.role != "client":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(runners[args.role]())  # type: ignore[arg-type]
        return
    table = asyncio.run(burst(args) if args.burst else drive(args))
    print(table)
    if args.write:
        args.write.write_text(table)


if __name__ == "__main__":
    main()
