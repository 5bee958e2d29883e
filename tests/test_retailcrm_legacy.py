"""Records the old system wrote (../shared/seeds/001_*, 003_*) read as the agent's layout, without error.

The seeds show two layouts: the older one (003: `api_url`, `client_id` "vochi-asterisk", `user_mappings`
{extension: user id as a number}) and the later one (001: `domain`, `user_extensions` {user id: extension or
null}, `last_sync`, `version`, no `timezone`, sometimes no `client_id`). Where they are vague (is `enabled` ever a
string? are mapping values ever numbers?) the reader takes both, as tested here.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.retailcrm.connector import RetailCrmConnector
from connectors.retailcrm.legacy import DEFAULT_TIMEZONE, adapt, is_legacy
from connectors.retailcrm.settings import DEFAULT_CODE, parse

KEY = "Zq8PLr2mWx7TaK4nB9vC1dE6fG3hJ5kY"

OLDER: dict[str, Any] = {  # 003: the first layout
    "enabled": True,
    "api_url": "https://example.retailcrm.ru",
    "api_key": KEY,
    "client_id": "vochi-asterisk",
    "user_mappings": {"151": 16, "152": 18},
}
LATER: dict[str, Any] = {  # 001: the layout the admin UI wrote
    "domain": "https://evgenybaevski.retailcrm.ru",
    "api_key": KEY,
    "enabled": True,
    "user_extensions": {"19": "150", "18": "151", "22": None},
    "last_sync": "2025-01-09T19:20:00Z",
    "version": "1.0",
}


def test_the_older_layout_is_read() -> None:
    assert is_legacy(OLDER)
    s = RetailCrmConnector().parse_settings(OLDER)
    assert s.domain == "https://example.retailcrm.ru" and s.api_url == "https://example.retailcrm.ru/api/v5"
    assert dict(s.user_extensions) == {"16": "151", "18": "152"}
    assert s.code == "vochi-asterisk"  # the old client_id is the module's code ...
    assert s.client_id != "vochi-asterisk" and len(s.client_id) >= 32  # ... not the secret clientId
    assert s.timezone == DEFAULT_TIMEZONE and s.enabled
    saved = s.to_json()
    assert "api_url" not in saved and "user_mappings" not in saved
    assert parse(saved) == s  # the agent's layout, read back the same


def test_the_later_layout_is_read_and_unknown_keys_are_kept() -> None:
    assert is_legacy(LATER)
    s = RetailCrmConnector().parse_settings(LATER, enterprise_timezone="Europe/Minsk")
    assert s.domain == "https://evgenybaevski.retailcrm.ru"
    assert dict(s.user_extensions) == {"19": "150", "18": "151"}  # "22": null is unassigned
    assert s.timezone == "Europe/Minsk"  # the enterprise's
    assert s.code == DEFAULT_CODE
    saved = s.to_json()
    assert saved["last_sync"] == "2025-01-09T19:20:00Z" and saved["version"] == "1.0"
    assert not is_legacy(saved)


def test_the_clientid_of_an_old_record_is_stable_and_comes_from_the_key() -> None:
    """Every read (every agent on the database) gives the same clientId until the record is saved."""
    a = RetailCrmConnector().parse_settings(OLDER).client_id
    assert a == RetailCrmConnector().parse_settings(dict(OLDER)).client_id
    assert a != RetailCrmConnector().parse_settings({**OLDER, "api_key": KEY[::-1]}).client_id
    assert KEY not in a


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"api_url": "https://shop.retailcrm.ru/api/v5/"}, "https://shop.retailcrm.ru"),
        ({"api_url": "https://shop.retailcrm.ru/api"}, "https://shop.retailcrm.ru"),
        ({"api_url": "shop.retailcrm.ru"}, "https://shop.retailcrm.ru"),
        ({"domain": "https://shop.retailcrm.ru/api/v5"}, "https://shop.retailcrm.ru"),
        ({"domain": "test.com", "api_url": "https://other.retailcrm.ru"}, "https://test.com"),
    ],
)
def test_account_url_with_or_without_the_api_path(over: dict[str, Any], expected: str) -> None:
    s = RetailCrmConnector().parse_settings({"api_key": KEY, **over})
    assert s.domain == expected


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(True, True), (False, False), ("true", True), ("false", False), ("True", True), ("0", False), ("1", True)],
)
def test_enabled_as_bool_or_string(value: object, enabled: bool) -> None:
    assert RetailCrmConnector().parse_settings({**LATER, "enabled": value}).enabled is enabled


@pytest.mark.parametrize(
    ("record", "mapping"),
    [
        ({"user_mappings": {"151": 16, "152": "18", "153": None}}, {"16": "151", "18": "152"}),
        ({"user_extensions": {"19": 150, "18": "151", "22": None, "23": ""}}, {"19": "150", "18": "151"}),
        ({"user_extensions": {}, "user_mappings": {"150": 7}}, {}),  # the agent's key wins over its twin
    ],
)
def test_mappings_numbers_strings_and_unassigned(record: dict[str, Any], mapping: dict[str, str]) -> None:
    s = RetailCrmConnector().parse_settings({"domain": "shop.retailcrm.ru", "api_key": KEY, **record})
    assert dict(s.user_extensions) == mapping


def test_short_key_and_no_timezone_read_without_error() -> None:
    """003's test record (`test.com`/`test123`): readable, RetailCRM will say whether the key works."""
    s = RetailCrmConnector().parse_settings({"domain": "test.com", "api_key": "test123", "timezone": None})
    assert s.api_key == "test123" and s.timezone == DEFAULT_TIMEZONE


def test_an_unknown_enterprise_zone_falls_back_to_the_default() -> None:
    assert RetailCrmConnector().parse_settings(LATER, enterprise_timezone="Mars/Base").timezone == DEFAULT_TIMEZONE


def test_records_the_agent_saved_are_left_alone() -> None:
    saved = parse({"domain": "https://shop.retailcrm.ru", "api_key": KEY, "timezone": "Asia/Tokyo"}).to_json()
    assert not is_legacy(saved)
    assert adapt(saved) == saved
    assert RetailCrmConnector().parse_settings(saved, enterprise_timezone="Europe/Minsk").timezone == "Asia/Tokyo"
