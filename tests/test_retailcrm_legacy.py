"""Settings written by the old system (api_url, user_mappings) read as the new layout."""

from __future__ import annotations

from connectors.retailcrm.connector import RetailCrmConnector
from connectors.retailcrm.legacy import adapt, is_legacy

KEY = "Zq8PLr2mWx7TaK4nB9vC1dE6fG3hJ5kY"


def test_legacy_keys_become_new_ones() -> None:
    old = {
        "api_url": "https://shop.retailcrm.ru/api/v5/",
        "api_key": KEY,
        "timezone": "Europe/Moscow",
        "user_mappings": {"150": "7", "151": 8, "": "9"},
    }
    assert is_legacy(old)
    new = adapt(old)
    assert new == {
        "domain": "https://shop.retailcrm.ru",
        "api_key": KEY,
        "timezone": "Europe/Moscow",
        "user_extensions": {"7": "150", "8": "151"},
    }
    assert not is_legacy(new)
    settings = RetailCrmConnector().parse_settings(old)
    assert settings.domain == "https://shop.retailcrm.ru"
    assert dict(settings.user_extensions) == {"7": "150", "8": "151"}
    assert "api_url" not in settings.to_json() and "user_mappings" not in settings.to_json()


def test_new_keys_win_and_plain_domain_is_kept() -> None:
    both = {
        "api_url": "https://old.retailcrm.ru",
        "domain": "https://new.retailcrm.ru",
        "user_mappings": {"150": "7"},
        "user_extensions": {"8": "151"},
    }
    assert adapt(both) == {"domain": "https://new.retailcrm.ru", "user_extensions": {"8": "151"}}
    assert adapt({"api_url": "https://shop.retailcrm.ru"})["domain"] == "https://shop.retailcrm.ru"
    assert adapt({"domain": "x"}) == {"domain": "x"}
