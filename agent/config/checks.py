"""The building blocks of agent.toml's validation: a table validator that records problems instead of
raising, and the checks of single values (addresses, URLs, names, patterns). Pure, no I/O."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class Table:
    """One TOML table being validated: typed getters that record problems instead of raising."""

    def __init__(
        self, label: str, where: str, data: Mapping[str, Any], problems: list[str], *, prefix: str = ""
    ) -> None:
        self.label = label
        self.where = where
        self.prefix = prefix  # "ssh." for the keys of an inline table
        self.data = data
        self.problems = problems
        self.seen: set[str] = set()

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.label}: {self.where} {self.prefix}{key}: {message}")

    def _get(self, key: str) -> tuple[bool, Any]:
        self.seen.add(key)
        return key in self.data, self.data.get(key)

    def string(self, key: str, default: str | None, check: Callable[[str], str | None] | None = None) -> str:
        present, value = self._get(key)
        if not present:
            if default is None:
                self.problem(key, "missing (required)")
                return ""
            return default
        if not isinstance(value, str):
            self.problem(key, f"expected a string, got {show(value)}")
            return default or ""
        if check and value:
            error = check(value)
            if error:
                self.problem(key, error)
                return default or ""
        return value

    def strings(
        self, key: str, default: tuple[str, ...], check: Callable[[str], str | None] | None = None
    ) -> tuple[str, ...]:
        present, value = self._get(key)
        if not present:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"expected an array of strings, got {show(value)}")
            return default
        for item in value:
            error = check(item) if check else None
            if error:
                self.problem(key, f"{show(item)}: {error}")
                return default
        return tuple(value)

    def integer(self, key: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        present, value = self._get(key)
        if not present:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected an integer, got {show(value)}")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.problem(key, f"expected an integer from {minimum} to {maximum}, got {value}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        present, value = self._get(key)
        if not present:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {show(value)}")
            return default
        return value

    def number(self, key: str, default: float, minimum: float | None = None) -> float:
        present, value = self._get(key)
        if not present:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected a number, got {show(value)}")
            return default
        if minimum is not None and value < minimum:
            self.problem(key, f"expected a number of at least {minimum}, got {value}")
            return default
        return float(value)

    def address(self, key: str, default: Address) -> Address:
        present, value = self._get(key)
        if not present:
            return default
        if not isinstance(value, str):
            self.problem(key, f'expected an address "host:port", got {show(value)}')
            return default
        parsed = parse_address(value)
        if isinstance(parsed, str):
            self.problem(key, parsed)
            return default
        return parsed

    def reject_unknown(self) -> None:
        for key in self.data:
            if key not in self.seen:
                known = ", ".join(sorted(self.seen))
                self.problem(key, f"unknown key (known here: {known})")


def parse_address(value: str) -> Address | str:
    """ "host:port" or "[v6]:port" -> Address, or an error message."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", value)
    if not match:
        return f'expected an address "host:port", got {show(value)}'
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        return f"port must be 1..65535, got {port}"
    error = check_host(host)
    if error:
        return error
    return Address(host, port)


def check_host(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if re.fullmatch(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9-]{1,63})*", value):
        return None
    return f"not a valid host name or IP address: {show(value)}"


def check_network(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=False)
        return None
    except ValueError:
        return f"expected an IP address or network (10.0.0.0/8), got {show(value)}"


def check_url(value: str) -> str | None:
    if re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        return None
    return f"expected an http(s) URL, got {show(value)}"


def check_dsn(value: str) -> str | None:
    if value.startswith(("postgresql://", "postgres://")):
        return None
    return f'expected "" (embedded) or a postgresql:// URL, got {show(mask_dsn(value))}'


def check_cdr_db(value: str) -> str | None:
    if value.startswith(("postgresql://", "postgres://", "mysql://", "mariadb://")):
        return None
    return f"expected a postgresql:// or mysql:// URL, got {show(mask_dsn(value))}"


def check_table(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", value):
        return None
    return f"expected a table name (schema.table allowed), got {show(value)}"


def mask_dsn(value: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)


def check_region(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z]{2}", value):
        return None
    return f'expected a two-letter ISO country code such as "BY", got {show(value)}'


def check_name(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
        return None
    return f"expected letters, digits, '_', '.', '-' (at most 64), got {show(value)}"


def check_ssh_user(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}", value):
        return None
    return f"expected a user name on the PBX host (letters, digits, '_', '.', '-'), got {show(value)}"


def check_enterprise(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
        return None
    return f"expected letters, digits, '_', '-' (at most 32), got {show(value)}"


def check_originate_channel(value: str) -> str | None:
    """A dial string with `{extension}` where the manager's extension goes, e.g. "PJSIP/{extension}"."""
    fields = re.findall(r"\{([^{}]*)\}", value)
    if fields != ["extension"] or re.search(r"[\s,]", value) or "/" not in value:
        return (
            "expected a dial string with {extension} once and no spaces or commas, "
            f'such as "PJSIP/{{extension}}" or "Local/{{extension}}@agents", got {show(value)}'
        )
    return None


def check_context(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9_.+-]{1,79}", value):
        return None
    return f"expected a dialplan context name (letters, digits, '_', '.', '+', '-'), got {show(value)}"


def check_variable(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9_]{1,80}", value) and value.strip("_"):
        return None
    return f"expected a dialplan variable name (letters, digits, '_'), got {show(value)}"


def check_regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    return None


def one_of(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value in choices:
            return None
        return f"expected one of {', '.join(choices)}, got {show(value)}"

    return check


def show(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)
