"""Backfill on connect: after each (re)connect of a PBX's AMI link, the calls its CDR has and we missed.

On by default for every PBX: its CDR database (`cdr_db`) or `cdr_csv`, else the standard Master.csv (over
SFTP when its AMI goes through SSH). Without an explicit `cdr_csv` or `cdr_db`, a CDR that is not there, not
readable, or written without the uniqueid columns (cdr.conf `loguniqueid`) is a `note` in /health and one
INFO line, not a failure: many PBXs keep no CSV. After the link is up and reconciled, the pipeline
`request`s one catch-up; it runs here, in the pipeline's own task group, never on the AMI reader's path.
The window is from when this PBX's events stopped being seen to the reconnect:
- after an in-process reconnect: the time the link went down, minus `MARGIN`;
- at agent start: the latest `ended_at` of this PBX's stored calls, minus `MARGIN`; with none stored
  (a first install) nothing is backfilled: calls older than the agent are the CLI's job;
- never more than `MAX_BACK` back.
Calls that ended in the window are read from the end of the CDR (agent.repair.cdrtail), and each one not
already stored and not owned by the live tracker (active after the reconcile, or closed by it) is planned
and stored through the same code as `pbx-agent backfill` (agent.repair.backfill.store_missing). Calls the
reconcile closed (they ended while the link was down, so their end is a guess) wait for the catch-up: the
CDR's account of each is stored instead, and the ones the CDR does not have are sent on as closed. The catch-up
starts `SETTLE` after the reconnect, so cdr_csv has written the rows of the calls that ended just before.
A failure (no file, SFTP down, database away) is one WARNING line and `backfill.error` in the PBX's
/health component; the link goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from agent.config.sections import PbxSection
from agent.delivery.planner import Planner
from agent.ingest.pipeline import channel_rules
from agent.repair import cdr
from agent.repair.backfill import LOOKBACK, Summary, cel_of, store_missing
from agent.repair.cdrsource import read_cdr
from agent.repair.cdrtail import CdrUnreadable
from agent.repair.cel import CelEvent
from agent.store import database
from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from agent.web.health import ComponentHealth

log = logging.getLogger(__name__)

MARGIN = timedelta(seconds=60)
MAX_BACK = timedelta(hours=24)
SETTLE = timedelta(seconds=5)

LAST_STORED = "SELECT max(ended_at) FROM calls WHERE enterprise_number = $1 AND pbx = $2"


@dataclass(frozen=True, slots=True)
class CatchUpStore:
    """What a catch-up needs from the running agent."""

    pool: database.Pool
    planner: Planner


@dataclass(frozen=True, slots=True)
class Job:
    lost_at: datetime | None  # when the link went down in this process; None: the first connect
    until: datetime  # the reconnect (reconcile) time
    skip: frozenset[str]  # ids of the calls the live tracker owns
    closed: tuple[CallEvent, ...] = ()  # what the reconcile closed: the CDR's account of each wins
    release: Callable[[CallEvent], None] | None = None  # sends on a closed call the CDR does not have


def window_start(until: datetime, lost_at: datetime | None, last_stored: datetime | None) -> datetime | None:
    """Where the window begins, or None when there is nothing to catch up (a first install)."""
    begin = lost_at if lost_at is not None else last_stored
    if begin is None:
        return None
    return max(begin - MARGIN, until - MAX_BACK)


def calls_ended_in(lines: list[str], since: datetime, until: datetime) -> list[list[cdr.CdrRow]]:
    """The CDR rows of each call that ended in [since, until) (pure; run in a thread on big tails)."""
    return [g for g in cdr.group(cdr.parse(lines).rows) if since <= max(r.end for r in g) < until]


class CdrCatchUp:
    def __init__(
        self,
        pbx: PbxSection,
        rules: ChannelRules,
        store: CatchUpStore,
        health: ComponentHealth,
        backfilled: Counter,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pbx = pbx
        self.source = pbx.cdr_source
        # the admin said this CDR is there (and logs uniqueids)
        self.explicit = pbx.cdr_csv is not None or pbx.cdr_db is not None
        self.rules = rules
        self.store = store
        self.health = health
        self.backfilled = backfilled.labels(pbx.name)
        self.clock = clock
        self.jobs: asyncio.Queue[Job] = asyncio.Queue()
        self.runs = 0  # catch-ups finished (tests wait on it)

    def request(
        self,
        lost_at: datetime | None,
        until: datetime,
        owned: Set[str],
        closed: Sequence[CallEvent] = (),
        release: Callable[[CallEvent], None] | None = None,
    ) -> None:
        """After a reconcile, on the reader's path: queue one catch-up, never wait."""
        self.jobs.put_nowait(Job(lost_at, until, frozenset(owned), tuple(closed), release))

    async def run(self) -> None:
        waiting: Job | None = None  # taken off the queue, its catch-up not begun
        try:
            while True:
                waiting = await self.jobs.get()
                wait = (waiting.until + SETTLE - self.clock()).total_seconds()
                if wait > 0:
                    await asyncio.sleep(wait)
                job, waiting = waiting, None
                await self._run_one(job)  # releases what the job's reconcile closed, whatever happens
                self.runs += 1
        except asyncio.CancelledError:  # a stop: what no catch-up judged goes on as the reconcile closed it
            for job in [*([waiting] if waiting else []), *(self.jobs.get_nowait() for _ in range(self.jobs.qsize()))]:
                self._release(job, set())
            raise

    async def _run_one(self, job: Job) -> None:
        report: dict[str, object] = {
            "at": time.time(),
            "since": None,
            "until": job.until.isoformat(),
            "calls": 0,
            "error": None,
        }
        covered: set[str] = set()  # closed calls the CDR gave a better account of (stored from it)
        try:
            summary = await self.once(job, report, covered)
        except NoUsableCdr as exc:  # the default place, and nothing usable there: said once, not a failure
            report["note"] = str(exc)
            if self.health.details.get("backfill", {}).get("note") != report["note"]:
                log.info("backfill %s: %s", self.pbx.name, exc)
            summary = None
        except Exception as exc:  # a catch-up that fails is reported; the link goes on
            report["error"] = str(exc) or type(exc).__name__
            log.warning("backfill %s: %s", self.pbx.name, report["error"])
        else:
            if summary is not None:
                report["calls"] = summary.backfilled
                log.info(
                    "backfill %s: %s to %s: %d call(s) ended in the window, %d already stored or live, %d backfilled",
                    self.pbx.name,
                    report["since"],
                    report["until"],
                    summary.calls,
                    summary.known,
                    summary.backfilled,
                )
        finally:
            self._release(job, covered)
        self.health.details["backfill"] = report

    def _release(self, job: Job, covered: set[str]) -> None:
        """The closed calls the CDR did not have (or could not be read for) go on as the reconcile closed them."""
        if job.release is None:
            return
        for event in job.closed:
            if event.call_id not in covered:
                job.release(event)

    async def once(self, job: Job, report: dict[str, object], covered: set[str] | None = None) -> Summary | None:
        last_stored = None
        if job.lost_at is None:
            last_stored = await self.store.pool.fetchval(LAST_STORED, self.pbx.enterprise, self.pbx.name)
        since = window_start(job.until, job.lost_at, last_stored)
        if since is None:
            report["note"] = "no stored calls of this PBX yet: nothing to catch up"
            return None
        report["since"] = since.isoformat()
        try:
            lines = await read_cdr(self.pbx, self.source, since - LOOKBACK)
        except CdrUnreadable as exc:
            if self.explicit:
                raise
            raise NoUsableCdr(f"{exc}: calls missed while the AMI link was down are not recovered") from None
        groups = await asyncio.to_thread(calls_ended_in, lines, since, job.until)
        if not groups and not self.explicit and lines and not await asyncio.to_thread(has_uniqueids, lines):
            raise NoUsableCdr(
                f"the CDR {self.source} has no uniqueid columns (cdr.conf: loguniqueid = yes): calls missed while "
                "the AMI link was down are not recovered"
            )
        summary = Summary(rows=len(lines), calls=len(groups))
        cel_calls: dict[str, list[CelEvent]] = {}
        if groups:  # the CEL, where there is one, refines the CDR's account of each call (agent.repair.cel)
            cel_calls, report["cel"] = await cel_of(self.pbx, since - LOOKBACK)
        closed = {e.call_id for e in job.closed}
        found = {i for g in groups for i in cdr.ids_of(g)} & closed
        await store_missing(
            self.store.pool,
            self.store.planner,
            self.pbx,
            self.rules,
            groups,
            summary,
            skip=job.skip,
            cel_calls=cel_calls,
        )
        if covered is not None:
            covered |= found
        self.backfilled.inc(summary.backfilled)
        return summary


class NoUsableCdr(Exception):
    """No CDR at the default place this catch-up could use; the message says what and why it matters."""


def has_uniqueids(lines: list[str]) -> bool:
    """Do these Master.csv lines carry the uniqueid columns (a row the parser takes)?"""
    return bool(cdr.parse(lines[-50:]).rows)


def follower_of(
    store: CatchUpStore, default_region: str | None, backfilled: Counter
) -> Callable[[PbxSection, ComponentHealth], CdrCatchUp | None]:
    """What the composition root hands the PBX links: a catch-up for each [[pbx]] (see the module's docstring)."""

    def build(pbx: PbxSection, health: ComponentHealth) -> CdrCatchUp | None:
        return CdrCatchUp(pbx, channel_rules(pbx, default_region), store, health, backfilled)

    return build
