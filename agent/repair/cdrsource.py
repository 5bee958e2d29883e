"""Where a PBX's CDR is read from: its database (`cdr_db`) when it has one, else Master.csv (`cdr_csv`)."""

from __future__ import annotations

from datetime import datetime, tzinfo

from agent.config.sections import PbxSection, RecordingsSource
from agent.repair import cdrdb
from agent.repair.cdrtail import CdrUnreadable, ended_before, read_tail


async def read_cdr(pbx: PbxSection, source: RecordingsSource, since: datetime, tz: tzinfo | None = None) -> list[str]:
    """Master.csv lines with (at least) every CDR that started at `since` or later; CdrUnreadable on failure."""
    if pbx.cdr_db is not None:
        try:
            return await cdrdb.lines_since(pbx.cdr_db, pbx.cdr_db_table, since)
        except cdrdb.CdrDbUnreadable as exc:
            raise CdrUnreadable(str(exc)) from None
    return await read_tail(source, pbx, ended_before(since, tz))
