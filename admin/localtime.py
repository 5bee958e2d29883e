"""Times on the pages in the enterprise's own time zone, named on every page.

The zone is the enterprise's (its routing rules' `timezone`, the one smart redirect's hours already use, and
which a CRM record without a zone takes), else the one of the agent's `default_region` (the capital's for
the countries the agent is mostly used in, else what phonenumbers' geodata gives a fixed line there), else
UTC. Stored times stay UTC; only what a person reads is converted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import phonenumbers
from phonenumbers import timezone as phone_zones

from agent.store import enterprises
from agent.store.database import Pool
from connectors.texts import known_zone

# where a country has several zones, the one most of its offices keep (phonenumbers picks a region's example)
CAPITALS = {
    "BY": "Europe/Minsk",
    "RU": "Europe/Moscow",
    "KZ": "Asia/Almaty",
    "UA": "Europe/Kyiv",
    "UZ": "Asia/Tashkent",
    "KG": "Asia/Bishkek",
    "TJ": "Asia/Dushanbe",
    "AM": "Asia/Yerevan",
    "AZ": "Asia/Baku",
    "GE": "Asia/Tbilisi",
    "MD": "Europe/Chisinau",
    "US": "America/New_York",
    "CA": "America/Toronto",
    "BR": "America/Sao_Paulo",
    "AU": "Australia/Sydney",
}


@cache
def region_zone(region: str | None) -> str:
    """The zone of a country (ISO code), UTC when none can be told."""
    region = (region or "").upper()
    if region in CAPITALS:
        return CAPITALS[region]
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.FIXED_LINE)
    zones = phone_zones.time_zones_for_geographical_number(example) if example is not None else ()
    return next((z for z in zones if known_zone(z)), "UTC")


async def zone_for(pool: Pool, number: str, default_region: str | None) -> ZoneInfo:
    name = await enterprises.timezone_of(pool, number)
    return ZoneInfo(name) if name and known_zone(name) else ZoneInfo(region_zone(default_region))


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """A local day as [start, end) instants (a DST day has 23 or 25 hours)."""
    start = datetime.combine(day, time(), zone)
    return start, datetime.combine(day + timedelta(days=1), time(), zone)


@jinja2.pass_context
def when(context: Any, value: object) -> str:
    """Template filter: a time (ISO text, datetime or epoch seconds) as 'YYYY-MM-DD HH:MM:SS' in the page's
    zone (`tz` in the context, set for an enterprise's pages; UTC elsewhere); '—' for none."""
    if value is None or value == "":
        return "—"
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)[:19].replace("T", " ")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    zone = context.get("tz")
    return moment.astimezone(zone if isinstance(zone, ZoneInfo) else UTC).strftime("%Y-%m-%d %H:%M:%S")
