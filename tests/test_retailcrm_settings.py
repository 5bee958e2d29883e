"""connectors.retailcrm.settings: validation names the field; round trip; client id generation."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.retailcrm.settings import DEFAULT_CODE, SECRET_FIELDS, SettingsError, parse

GOOD: dict[str, Any] = {
    "domain": "https://Shop.RetailCRM.ru/",
    "api_key": "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6",
    "timezone": "Europe/Moscow",
}


def test_defaults_normalisation_and_generated_client_id() -> None:
    s = parse(GOOD, new_client_id=lambda: "x" * 32)
    assert s.domain == "https://shop.retailcrm.ru"
    assert s.api_url == "https://shop.retailcrm.ru/api/v5"
    assert s.client_id == "x" * 32
    assert s.code == DEFAULT_CODE
    assert s.enabled and s.popup_in and s.popup_out and s.popup_hangup and s.upload_history
    assert parse(s.to_json()) == s


def test_generated_client_ids_differ_and_are_long() -> None:
    a, b = parse(GOOD).client_id, parse(GOOD).client_id
    assert a != b
    assert len(a) >= 32


def test_bare_host_gets_https() -> None:
    assert parse({**GOOD, "domain": "demo.simla.com"}).domain == "https://demo.simla.com"


def test_secret_fields_listed() -> None:
    assert "api_key" in SECRET_FIELDS
    assert "client_id" in SECRET_FIELDS


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"domain": "http://shop.retailcrm.ru"}, "domain"),
        ({"domain": "https://shop.retailcrm.ru/api/v5"}, "domain"),
        ({"domain": "https://shop.retailcrm.ru/?x=1"}, "domain"),
        ({"domain": ""}, "domain"),
        ({"api_key": ""}, "api_key"),
        ({"api_key": "has space in it!"}, "api_key"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"enabled": "yes"}, "enabled"),
        ({"popup_hangup": 1}, "popup_hangup"),
        ({"user_extensions": {"7": "101", "8": "101"}}, "user_extensions.8"),
        ({"user_extensions": {"abc": "101"}}, "user_extensions.abc"),
        ({"user_extensions": {"7": 101}}, "user_extensions.7"),
        ({"user_extensions": ["101"]}, "user_extensions"),
        ({"external_phone": "call me"}, "external_phone"),
        ({"code": "Has Spaces"}, "code"),
        ({"client_id": "short"}, "client_id"),
    ],
)
def test_errors_name_the_field(over: dict[str, Any], field: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse({**GOOD, **over})
    assert err.value.field == field
    assert field in str(err.value)


def test_error_messages_do_not_echo_the_api_key() -> None:
    with pytest.raises(SettingsError) as err:
        parse({**GOOD, "api_key": "secret key with spaces 123456"})
    assert "secret key" not in str(err.value)


def test_unknown_keys_are_kept_not_refused() -> None:
    """A record is the platform's: keys the agent does not know are written back as they were."""
    s = parse({**GOOD, "surprise": 1, "last_sync": "2025-01-09T19:20:00Z"})
    assert s.to_json()["surprise"] == 1 and s.to_json()["last_sync"] == "2025-01-09T19:20:00Z"
    assert parse(s.to_json()) == s


def test_plain_http_only_for_loopback() -> None:
    assert parse({**GOOD, "domain": "http://127.0.0.1:8080"}).domain == "http://127.0.0.1:8080"
