"""`pbx-agent backfill --pbx NAME --since T`: calls that no agent saw, taken from the PBX's CDR.

A call that began and ended while no agent was connected to the PBX is in Asterisk's CDR (`Master.csv`,
agent.repair.cdr) but not in `calls`. This reads the PBX's `cdr_csv` (a local file, or over SFTP with the PBX's
`ssh` settings), groups the rows of the period into calls, drops the calls already stored (by linkedid or
any uniqueid of the call), and plans the rest through the planner like any ended call: each is stored in
`calls` (`details.backfilled = true`) in the same transaction as its deliveries, which the running agent
sends. Idempotency keys make a second run (or a call the agent stores meanwhile) harmless.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.config.load_pbx import parse_source
from agent.config.sections import Config, PbxSection
from agent.delivery.dispatch import StoreOnly
from agent.delivery.integrations import Integrations
from agent.delivery.outbox import Outbox
from agent.delivery.planner import Planner
from agent.ingest.pipeline import channel_rules
from agent.repair import cdr, cel
from agent.repair.cdrsource import read_cdr
from agent.repair.cdrtail import CdrUnreadable
from agent.repair.cel import CelEvent
from agent.repair.celsource import CelUnavailable, read_cel
from agent.repair.redeliver import _progress, _when
from agent.store import database, peers
from agent.store import routing_rules as routing_store
from agent.store.secretbox import SecretBox, load_or_create_secret
from agent.tracking.channels import ChannelRules
from connectors.http import make_client
from connectors.registry import connectors, secret_fields

log = logging.getLogger(__name__)

PAGE = 200
# a call's rows can start before the period does (a long call); read that much further back
LOOKBACK = timedelta(hours=12)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pbx", required=True, metavar="NAME", help="the [[pbx]] whose CDR to read")
    parser.add_argument("--since", required=True, type=_when, metavar="T", help="ISO date or date-time (UTC)")
    parser.add_argument("--until", type=_when, metavar="T", help="ISO date or date-time (UTC); default now")
    parser.add_argument(
        "--cdr",
        metavar="PATH",
        help='Master.csv: "/path", "sftp:/path" (default: [[pbx]] cdr_csv, else /var/log/asterisk/cdr-csv/Master.csv)',
    )
    parser.add_argument(
        "--cdr-timezone",
        metavar="ZONE",
        type=_zone,
        help="the zone of the CDR's times (IANA name; UTC with usegmtime = yes); default: read from the uniqueids",
    )


def _zone(value: str) -> tzinfo:
    try:
        return UTC if value.upper() == "UTC" else ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"not a time zone: {value!r}") from None


@dataclass
class Summary:
    rows: int = 0
    skipped_rows: int = 0
    calls: int = 0
    known: int = 0
    backfilled: int = 0
    deliveries: int = 0

    def __str__(self) -> str:
        return (
            f"{self.rows} CDR row(s) read ({self.skipped_rows} not usable); {self.calls} call(s) in the period, "
            f"{self.known} already stored; {self.backfilled} backfilled; {self.deliveries} new deliveries "
            "in the outbox"
        )


def _pbx(config: Config, name: str) -> PbxSection:
    for pbx in config.pbx:
        if pbx.name == name:
            return pbx
    known = ", ".join(p.name for p in config.pbx) or "none"
    raise ValueError(f"--pbx: no [[pbx]] named {name!r} in {config.path} (configured: {known})")


async def backfill(config: Config, args: argparse.Namespace) -> Summary:
    pbx = _pbx(config, args.pbx)
    source = pbx.cdr_source
    if args.cdr:
        problems: list[str] = []
        parsed = parse_source(args.cdr, Path.cwd(), has_ssh=pbx.ssh is not None, problem=problems.append)
        if parsed is None:
            raise ValueError(f"--cdr: {problems[0]}")
        source = parsed
    until = args.until or datetime.now(UTC)
    summary = Summary()
    try:  # the period's rows are at the file's end (cdr_csv appends): read back to where they start
        read_from = replace(pbx, cdr_db=None) if args.cdr else pbx  # --cdr names a file: that file, not cdr_db
        lines = await read_cdr(read_from, source, args.since - LOOKBACK, args.cdr_timezone)
    except CdrUnreadable as exc:
        raise ValueError(str(exc)) from None
    got = cdr.parse(lines, args.cdr_timezone)
    summary.rows, summary.skipped_rows = len(got.rows) + got.skipped, got.skipped
    rows = [r for r in got.rows if args.since - LOOKBACK <= r.start < until]
    groups = [g for g in cdr.group(rows) if args.since <= g[0].start < until]
    summary.calls = len(groups)
    cel_calls = (await cel_of(pbx, args.since - LOOKBACK))[0] if groups and not args.cdr else {}
    rules = channel_rules(pbx, config.agent.default_region)
    async with database.embedded_or_external(config.database.dsn, config.agent.state_dir) as dsn:
        pool = await database.create_pool(dsn, 2, name=peers.tool_name("backfill"))
        try:
            await database.migrate(pool)
            box = SecretBox(load_or_create_secret(config.agent.state_dir), secret_fields())
            async with make_client() as http:
                # the enterprise's routing rules hold here as in the agent (a blocked caller never reaches a CRM)
                planner = Planner(
                    Integrations(pool, box, connectors(), http),
                    Outbox(pool, dispatcher=StoreOnly("backfill")),
                    rules=routing_store.RulesCache(pool).get,
                )
                await store_missing(pool, planner, pbx, rules, groups, summary, progress=_progress, cel_calls=cel_calls)
        finally:
            await pool.close()
    return summary


async def cel_of(pbx: PbxSection, since: datetime) -> tuple[dict[str, list[CelEvent]], str]:
    """The PBX's CEL events from `since` on, by call, and what was read (or why nothing was) for the report."""
    try:
        events = await read_cel(pbx, since)
    except CelUnavailable as exc:
        (log.warning if pbx.cel_csv is not None else log.info)("CEL of %s not used: %s", pbx.name, exc)
        return {}, f"not used: {exc}"
    calls = cel.by_call(events)
    return calls, f"{len(events)} event(s) of {len(calls)} call(s)"


async def store_missing(
    pool: database.Pool,
    planner: Planner,
    pbx: PbxSection,
    rules: ChannelRules,
    groups: list[list[cdr.CdrRow]],
    summary: Summary,
    *,
    skip: Set[str] = frozenset(),
    progress: Callable[[int, int], None] | None = None,
    cel_calls: Mapping[str, Sequence[CelEvent]] | None = None,
) -> None:
    """Plan and store the calls of `groups` that are not in `calls` (by linkedid or any uniqueid) and have
    no id in `skip` (calls the live tracker owns); counts into `summary`. `cel_calls`: the CEL's events of
    each call (agent.repair.cel.by_call), which refine what the CDR says."""
    cel_calls = cel_calls or {}
    for start in range(0, len(groups), PAGE):
        page = groups[start : start + PAGE]
        ids = sorted(set().union(*(cdr.ids_of(g) for g in page)))
        stored = {
            r["call_id"]
            for r in await pool.fetch(
                "SELECT call_id FROM calls WHERE enterprise_number = $1 AND call_id = ANY($2::text[])",
                pbx.enterprise,
                ids,
            )
        }
        missing = [g for g in page if not cdr.ids_of(g) & (stored | skip)]
        summary.known += len(page) - len(missing)
        events = [
            cel.refine(cdr.to_event(g, rules, pbx.enterprise, pbx.name), cel_calls.get(g[0].call_key), rules)
            for g in missing
        ]
        if events:
            summary.deliveries += await planner.plan_and_store(events)
        summary.backfilled += len(events)
        if progress is not None:
            progress(start + len(page), len(groups))


def report(summary: Summary) -> None:
    sys.stderr.write("\n")
    print(summary)
