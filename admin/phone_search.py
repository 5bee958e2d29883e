"""The calls filter's number, in any common way of writing it: `+375 29 123-45-67`, `80291234567`, `291234567`
find `+375291234567` (the whole number, read with `phonenumbers` in the agent's default region), and a part of a
number (`1234567`) finds the numbers it ends with. Pure; the SQL's indexes are in migration 0013."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from agent.tracking.phones import clean


@dataclass(frozen=True, slots=True)
class PhoneQuery:
    exact: tuple[str, ...]  # stored forms of a whole number (E.164, and the digits as typed)
    suffix: str  # or (not a valid whole number): the digits a stored number ends with


def phone_query(text: str, region: str | None) -> PhoneQuery:
    cleaned = clean(text)
    digits = cleaned.lstrip("+")
    candidate = "+" + digits[2:] if not cleaned.startswith("+") and digits.startswith("00") else cleaned
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_possible_number(parsed):
        return PhoneQuery((), digits)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    exact = tuple(dict.fromkeys((e164, digits, "+" + digits)))
    # a number of a range phonenumbers does not know as allocated may still be a whole number, or a part of one
    return PhoneQuery(exact, "" if phonenumbers.is_valid_number(parsed) else digits)


def reversed_prefix(suffix: str) -> str:
    """`reverse(phone) LIKE` this: a suffix search as an index range (digits only: nothing to escape)."""
    return suffix[::-1] + "%"
