"""Where a PBX's CEL is read from: the CEL table beside its CDR database, else cel_custom's CSV.

The CEL only refines what the CDR gives (agent.repair.cel), so a CEL that is not there is no error: where the
admin did not name one (`cel_csv`), a missing file or table is a note; where they did, the catch-up reports it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from agent.config.sections import PbxSection
from agent.repair import cdrdb
from agent.repair.cdrtail import CdrUnreadable, read_tail
from agent.repair.cel import SAMPLE_FIELDS, CelEvent, from_row, parse_lines

ZONE_SLACK = timedelta(hours=14)  # CEL times may be local with no zone: read that much further back


class CelUnavailable(Exception):
    """No CEL could be read; the message says why."""


async def read_cel(pbx: PbxSection, since: datetime) -> list[CelEvent]:
    """The CEL events from `since` on (and some before); CelUnavailable when there is none to read."""
    if pbx.cdr_db is not None and pbx.cel_db_table:
        try:
            rows = await cdrdb.rows_since(pbx.cdr_db, pbx.cel_db_table, "eventtime", since)
        except cdrdb.CdrDbUnreadable as exc:
            raise CelUnavailable(str(exc)) from None
        return [e for e in map(from_row, rows) if e is not None]
    fields = pbx.cel_csv_fields or SAMPLE_FIELDS
    cutoff = (since - ZONE_SLACK).timestamp()

    def enough(lines: list[str]) -> bool:
        return any(e.time < cutoff for e in parse_lines(lines, fields))

    try:
        lines = await read_tail(pbx.cel_source, pbx, enough)
    except CdrUnreadable as exc:
        raise CelUnavailable(str(exc).replace("the CDR", "the CEL")) from None
    return parse_lines(lines, fields)
