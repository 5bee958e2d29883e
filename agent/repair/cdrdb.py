"""The CDR in a database (cdr_pgsql, or cdr_adaptive_odbc into PostgreSQL): its rows as Master.csv lines.

`[[pbx]] cdr_db` names the database (a `postgresql://` DSN) and `cdr_db_table` the table (`cdr`). The columns
are read by name, so the stock cdr_pgsql schema and FreePBX's wider one both fit: `calldate` (the start),
`duration`, `billsec` and the rest of cdr_csv's columns; `answer` and `end` are derived (end = start +
duration, answer = end - billsec when billsec > 0); a `recordingfile` column (FreePBX) stands in for an empty
`userfield`. The lines are in cdr_csv's 21-column layout, so one parser (agent.repair.cdr) reads both, and the
zone of the times is inferred the same way from the uniqueids (naive local times, or UTC from a timestamptz).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from agent.repair.cdr import DATE_FORMAT

# rows whose local start is this far before `since` are read too: the PBX's zone is not known before parsing
ZONE_SLACK = timedelta(hours=14)
CONNECT_TIMEOUT_S = 10.0
TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class CdrDbUnreadable(Exception):
    """The CDR database cannot be read; the message says why (without the password)."""


async def lines_since(dsn: str, table: str, since: datetime) -> list[str]:
    """Master.csv lines of the CDRs that started at `since` or later (and some before: ZONE_SLACK)."""
    if not TABLE.fullmatch(table):
        raise CdrDbUnreadable(f"cdr_db_table {table!r} is not a table name")
    seconds = max(0.0, (datetime.now(UTC) - since + ZONE_SLACK).total_seconds())
    quoted = ".".join(f'"{part}"' for part in table.split("."))
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            rows = await conn.fetch(
                f"SELECT * FROM {quoted} WHERE calldate >= now() - make_interval(secs => $1) ORDER BY calldate",
                seconds,
            )
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CdrDbUnreadable(f"cannot read the CDR table {table} of cdr_db: {exc}") from None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(csv_fields(dict(row)))
    return out.getvalue().splitlines(keepends=True)


def csv_fields(row: dict[str, Any]) -> list[str]:
    """One database row in cdr_csv's layout with loguniqueid, loguserfield and newcdrcolumns."""
    start = _naive(row["calldate"])
    duration = int(row.get("duration") or 0)
    billsec = int(row.get("billsec") or 0)
    end = start + timedelta(seconds=duration)
    answer = end - timedelta(seconds=billsec) if billsec > 0 else None
    userfield = str(row.get("userfield") or "") or str(row.get("recordingfile") or "")
    return [
        str(row.get("accountcode") or ""),
        str(row.get("src") or ""),
        str(row.get("dst") or ""),
        str(row.get("dcontext") or ""),
        str(row.get("clid") or ""),
        str(row.get("channel") or ""),
        str(row.get("dstchannel") or ""),
        str(row.get("lastapp") or ""),
        str(row.get("lastdata") or ""),
        start.strftime(DATE_FORMAT),
        answer.strftime(DATE_FORMAT) if answer is not None else "",
        end.strftime(DATE_FORMAT),
        str(duration),
        str(billsec),
        str(row.get("disposition") or ""),
        str(row.get("amaflags") or ""),
        str(row.get("uniqueid") or ""),
        userfield,
        str(row.get("peeraccount") or ""),
        str(row.get("linkedid") or ""),
        str(int(row.get("sequence") or 0)),
    ]


def _naive(value: datetime) -> datetime:
    """A timestamptz in UTC, a timestamp as it is (the PBX's local time); both without tzinfo."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
