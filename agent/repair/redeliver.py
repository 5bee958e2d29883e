"""`pbx-agent redeliver`: plan stored calls again into the outbox.

Idempotency keys make it harmless: a delivery that exists (sent, failed or dead) is not stored twice, so
what this adds is what is missing — for instance the calls of a period for a CRM enabled since then. The
CRM-side keys (RetailCRM's externalId, amoCRM's uniq) guard the other side.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from agent.config.checks import check_enterprise
from agent.config.sections import Config
from agent.delivery.dispatch import StoreOnly
from agent.delivery.integrations import Integrations
from agent.delivery.outbox import Outbox
from agent.delivery.planner import Planner
from agent.store import database, peers
from agent.store import routing_rules as routing_store
from agent.store.calls import event_from_row
from agent.store.secretbox import SecretBox, load_or_create_secret
from connectors.http import make_client
from connectors.registry import connectors, secret_fields

PAGE = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--enterprise", required=True, metavar="N")
    parser.add_argument("--since", required=True, type=_when, metavar="T", help="ISO date or date-time (UTC)")
    parser.add_argument("--until", type=_when, metavar="T", help="ISO date or date-time (UTC); default now")
    parser.add_argument("--crm", choices=sorted(connectors()), help="only this CRM (default: every enabled one)")


def _when(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def redeliver(config: Config, args: argparse.Namespace) -> tuple[int, int]:
    """(calls planned, deliveries new in the outbox)."""
    problem = check_enterprise(args.enterprise)
    if problem:
        raise ValueError(f"--enterprise: {problem}")
    until = args.until or datetime.now(UTC)
    async with database.embedded_or_external(config.database.dsn, config.agent.state_dir) as dsn:
        pool = await database.create_pool(dsn, 2, name=peers.tool_name("redeliver"))
        try:
            await database.migrate(pool)
            box = SecretBox(load_or_create_secret(config.agent.state_dir), secret_fields())
            known = connectors()
            chosen = {args.crm: known[args.crm]} if args.crm else known
            async with make_client() as http:
                integrations = Integrations(pool, box, chosen, http)
                if not await integrations.enabled(args.enterprise):
                    raise ValueError(
                        f"enterprise {args.enterprise} has no enabled CRM" + (f" named {args.crm}" if args.crm else "")
                    )
                planner = Planner(
                    integrations,
                    Outbox(pool, dispatcher=StoreOnly("redeliver")),
                    rules=routing_store.RulesCache(pool).get,
                )  # as in the agent
                total = await pool.fetchval(
                    "SELECT count(*) FROM calls WHERE enterprise_number = $1 AND ended_at >= $2 AND ended_at < $3",
                    args.enterprise,
                    args.since,
                    until,
                )
                calls = added = 0
                after = (args.since, "")
                while True:
                    rows = await pool.fetch(
                        "SELECT * FROM calls WHERE enterprise_number = $1 AND (ended_at, call_id) > ($2, $3)"
                        " AND ended_at < $4 ORDER BY ended_at, call_id LIMIT $5",
                        args.enterprise,
                        after[0],
                        after[1],
                        until,
                        PAGE,
                    )
                    if not rows:
                        break
                    added += await planner.plan_and_store([event_from_row(dict(r)) for r in rows])
                    calls += len(rows)
                    after = (rows[-1]["ended_at"], rows[-1]["call_id"])
                    _progress(calls, int(total or 0))
                return calls, added
        finally:
            await pool.close()


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} calls")
    sys.stderr.flush()
