"""The CDR in a database: its rows as Master.csv lines.

`[[pbx]] cdr_db` names the database and `cdr_db_table` the table (`cdr`): a `postgresql://` DSN (cdr_pgsql, or
cdr_adaptive_odbc into PostgreSQL; asyncpg) or a `mysql://` one (FreePBX and Issabel keep `asteriskcdrdb.cdr`
in MySQL/MariaDB; aiomysql). The columns are read by name, so the stock schemas and FreePBX's wider one fit:
`calldate` (the start), `duration`, `billsec` and the rest of cdr_csv's columns; `answer` and `end` are
derived (end = start + duration, answer = end - billsec when billsec > 0); a `recordingfile` column (FreePBX)
stands in for an empty `userfield`. The lines are in cdr_csv's 21-column layout, so one parser
(agent.repair.cdr) reads both, and the zone of the times is inferred the same way from the uniqueids (naive
local times, or UTC from a timestamptz).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomysql
import asyncpg
import pymysql

from agent.repair.cdr import DATE_FORMAT

# rows whose local start is this far before `since` are read too: the PBX's zone is not known before parsing
ZONE_SLACK = timedelta(hours=14)
CONNECT_TIMEOUT_S = 10.0
MYSQL = ("mysql://", "mariadb://")
TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class CdrDbUnreadable(Exception):
    """The CDR database cannot be read; the message says why (without the password)."""


async def lines_since(dsn: str, table: str, since: datetime) -> list[str]:
    """Master.csv lines of the CDRs that started at `since` or later (and some before: ZONE_SLACK)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in await rows_since(dsn, table, "calldate", since):
        writer.writerow(csv_fields(row))
    return out.getvalue().splitlines(keepends=True)


async def rows_since(dsn: str, table: str, column: str, since: datetime) -> list[dict[str, Any]]:
    """The rows of `table` whose `column` (a time) is `since` or later (and some before: ZONE_SLACK), by name."""
    if not TABLE.fullmatch(table):
        raise CdrDbUnreadable(f"table {table!r} is not a table name")
    seconds = max(0.0, (datetime.now(UTC) - since + ZONE_SLACK).total_seconds())
    try:
        return await (_mysql_rows if dsn.startswith(MYSQL) else _postgresql_rows)(dsn, table, column, seconds)
    except CdrDbUnreadable as exc:  # the message reaches /health and the admin pages, where logs' masking is not
        password = unquote(urlsplit(dsn).password or "")
        raise CdrDbUnreadable(str(exc).replace(password, "***") if password else str(exc)) from None


async def _postgresql_rows(dsn: str, table: str, column: str, seconds: float) -> list[dict[str, Any]]:
    quoted = ".".join(f'"{part}"' for part in table.split("."))
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            rows = await conn.fetch(
                f'SELECT * FROM {quoted} WHERE "{column}" >= now() - make_interval(secs => $1) ORDER BY "{column}"',
                seconds,
            )
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CdrDbUnreadable(f"cannot read the table {table} of cdr_db: {exc}") from None
    return [dict(row) for row in rows]


async def _mysql_rows(dsn: str, table: str, column: str, seconds: float) -> list[dict[str, Any]]:
    url = urlsplit(dsn)
    quoted = ".".join(f"`{part}`" for part in table.split("."))
    try:
        conn = await aiomysql.connect(
            host=url.hostname or "127.0.0.1",
            port=url.port or 3306,
            user=unquote(url.username or "root"),
            password=unquote(url.password or ""),
            db=url.path.lstrip("/") or "asteriskcdrdb",
            connect_timeout=CONNECT_TIMEOUT_S,
            cursorclass=aiomysql.DictCursor,
        )
        try:
            async with conn.cursor() as cursor:
                # the PBX's local time, as NOW() is on the PBX's database (the zone is inferred later)
                await cursor.execute(
                    f"SELECT * FROM {quoted} WHERE `{column}` >= NOW() - INTERVAL %s SECOND ORDER BY `{column}`",
                    (int(seconds),),
                )
                rows = await cursor.fetchall()
        finally:
            conn.close()
    except (OSError, pymysql.err.MySQLError) as exc:
        raise CdrDbUnreadable(f"cannot read the table {table} of cdr_db: {exc}") from None
    return [dict(row) for row in rows]


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
