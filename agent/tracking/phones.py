"""Phone numbers to E.164 where possible."""

from __future__ import annotations

import re

import phonenumbers

_JUNK = re.compile(r"[^\d+*#]")


def clean(number: str) -> str:
    """Digits, a leading '+', '*' and '#' only (spaces, dashes, brackets and dots dropped)."""
    stripped = number.strip()
    plus = stripped.startswith("+")
    digits = _JUNK.sub("", stripped).lstrip("+")
    return ("+" if plus else "") + digits


def normalise(number: str, region: str | None) -> str:
    """E.164 (`+375291234567`) when `phonenumbers` can make sense of the number, else `clean()`.

    Without a region only numbers already in international form (leading `+` or `00`) are
    converted; a short internal number or a service code comes back cleaned, never invented.
    """
    cleaned = clean(number)
    if not cleaned:
        return number.strip()
    candidate = "+" + cleaned[2:] if cleaned.startswith("00") else cleaned
    if region is None and not candidate.startswith("+"):
        return cleaned
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return cleaned
    if not phonenumbers.is_possible_number(parsed):
        return cleaned
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
