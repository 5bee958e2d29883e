"""What the agent writes into a CRM for people to read (call results, lead and task names, task texts), in the
enterprise's language, with times in its zone and the zone named. Russian and English.

A CRM's settings choose (`language`); without a choice: Russian for RetailCRM and for amoCRM accounts on
amocrm.ru, English for amocrm.com and Kommo. Times: the settings' `timezone`, else the enterprise's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Language = Literal["ru", "en"]
LANGUAGES: tuple[Language, ...] = ("ru", "en")

CATALOGUE: dict[Language, dict[str, str]] = {
    "ru": {
        "result.answered": "Отвечен",
        "result.no_answer": "Нет ответа",
        "result.cancelled": "Клиент положил трубку до ответа",
        "result.busy": "Занято",
        "result.failed": "Не удался",
        "who.forwarded": "{who} на {number}",
        "lead.in": "Звонок от {phone}",
        "lead.out": "Звонок на {phone}",
        "task.missed": "Перезвонить {phone}: пропущенный звонок {when}",
        "task.reached.in": "Дозвонились: отвеченный звонок от {phone} {when} ({who})",
        "task.reached.out": "Дозвонились: отвеченный звонок на {phone} {when} ({who})",
    },
    "en": {
        "result.answered": "Answered",
        "result.no_answer": "No answer",
        "result.cancelled": "The caller hung up before an answer",
        "result.busy": "Busy",
        "result.failed": "Failed",
        "who.forwarded": "{who} on {number}",
        "lead.in": "Call from {phone}",
        "lead.out": "Call to {phone}",
        "task.missed": "Call back {phone}: missed call at {when}",
        "task.reached.in": "Reached: answered call from {phone} at {when} ({who})",
        "task.reached.out": "Reached: answered call to {phone} at {when} ({who})",
    },
}


def say(language: Language, key: str, **values: object) -> str:
    return CATALOGUE[language][key].format(**values)


def known_zone(name: str) -> bool:
    """Is `name` an IANA zone this host's tz database has?"""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(moment: datetime | None, zone: str | None) -> str:
    """'2026-12-06 20:42 (Europe/Minsk)': a time as the enterprise's people read it, its zone named."""
    if moment is None:
        return "?"
    tz = zone_of(zone)
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return f"{aware.astimezone(tz).strftime('%Y-%m-%d %H:%M')} ({tz.key})"


def language_of(value: object, default: Language) -> Language:
    """A stored `language` (ru/en), else the default (the caller validates what an admin types)."""
    return "ru" if value == "ru" else "en" if value == "en" else default
