"""The CRM pages (RetailCRM, managers, amoCRM) over HTTP: JSON variants, validation, viewer 403s, no secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from agent.app import Agent
from agent.store import enterprises
from agent.store.secretbox import SecretBox, load_or_create_secret
from connectors.registry import secret_fields
from tests.admin_client import base, client, csrf
from tests.amocrm_setup import configure_amocrm
from tests.crm_setup import API_KEY, configure_retailcrm
from tests.fakes.amocrm import FakeAmoCrm
from tests.fakes.retailcrm import FakeRetailCrm

NEW_KEY = "Nw7PLr2mWx7TaK4nB9vC1dE6fG3hJ5kQ"


@pytest.fixture
async def fake_rc() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.add_users(3, start_id=7)
        yield fake


async def post(http: aiohttp.ClientSession, url: str, csrf_token: str, **fields: Any) -> tuple[int, Any]:
    async with http.post(url, json=fields, headers={"X-CSRF-Token": csrf_token}) as resp:
        return resp.status, await resp.json()


async def stored(agent: Agent) -> dict[str, Any]:
    found = await enterprises.get_integration(agent.parts.pool, "100", "retailcrm")
    assert found is not None
    box = SecretBox(load_or_create_secret(agent.config.agent.state_dir), secret_fields())
    return box.decrypted("retailcrm", found)


async def test_retailcrm_page_saves_tests_registers_without_showing_the_key(
    running_agent: Agent, fake_rc: FakeRetailCrm
) -> None:
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        async with http.get(f"{b}/retailcrm") as resp:
            html = await resp.text()
            assert resp.status == 200 and API_KEY not in html and "Zq8P…" in html
        async with http.get(f"{b}/retailcrm.json") as resp:
            data = await resp.json()
        assert data["settings"]["domain"] == fake_rc.url and data["settings"]["api_key"] != API_KEY
        assert "client_id" not in data["settings"] and API_KEY not in str(data)
        token = await csrf(http, f"{b}/retailcrm")
        # the mask sent back keeps the key; flags change
        status, _ = await post(
            http,
            f"{b}/retailcrm",
            token,
            action="save",
            api_key=data["settings"]["api_key"],
            popup_out="false",
            smart_redirect="true",
        )
        assert status == 200
        saved = await stored(running_agent)
        assert saved["api_key"] == API_KEY and saved["popup_out"] is False
        assert (await enterprises.get(running_agent.parts.pool, "100") or {})["settings"]["redirect_when_busy"] is True
        # invalid input: the error beside its field, nothing saved
        async with http.post(
            f"{b}/retailcrm", data={"csrf_token": token, "action": "save", "domain": "ftp://x/y", "api_key": NEW_KEY}
        ) as resp:
            assert resp.status == 400
            html = await resp.text()
            assert 'id="error-domain"' in html and NEW_KEY not in html
        assert (await stored(running_agent))["api_key"] == API_KEY
        status, body = await post(http, f"{b}/retailcrm", token, action="save", timezone="Mars/Base")
        assert status == 400 and body["field"] == "timezone"
        async with http.post(
            f"{b}/retailcrm",
            data={"csrf_token": token, "action": "test", "domain": fake_rc.url, "api_key": NEW_KEY, "site": ""},
        ) as resp:
            html = await resp.text()
            assert 'data-action="test"' in html and NEW_KEY not in html and 'value="None"' not in html
        async with http.post(
            f"{b}/amocrm", data={"csrf_token": token, "action": "save", "host": "", "proxy": ""}
        ) as resp:
            html = await resp.text()
            assert resp.status == 400 and 'id="error-host"' in html and 'value="None"' not in html
        # RetailCRM's refusal is shown as it answered
        fake_rc.fail_next(
            2,  # the look for a module to adopt, then the registration
            status=400,
            body={
                "success": False,
                "errorMsg": "Errors in the entity format",
                "errors": {"integrationModule[baseUrl]": "Invalid URL"},
            },
        )
        async with http.post(f"{b}/retailcrm", data={"csrf_token": token, "action": "register"}) as resp:
            html = await resp.text()
            assert resp.status == 200 and "Errors in the entity format" in html and "Invalid URL" in html
        # test connection and register against the fake
        status, body = await post(http, f"{b}/retailcrm", token, action="test")
        assert status == 200 and body["ok"] and "/api/telephony/call/event" in body["methods"]
        status, body = await post(http, f"{b}/retailcrm", token, action="register")
        assert status == 200 and body["created"] is True, body
        assert "pbx-agent" in fake_rc.modules
        async with http.get(f"{b}/retailcrm.json") as resp:
            assert (await resp.json())["module"]["registered"] is True
        # a wrong key: the exact reason
        status, body = await post(http, f"{b}/retailcrm", token, action="test", domain=fake_rc.url, api_key=NEW_KEY)
        assert status == 200 and not body["ok"] and body["reason"], body
        assert (await stored(running_agent))["api_key"] == API_KEY  # testing saves nothing
        status, body = await post(http, f"{b}/retailcrm", token, action="delete")
        assert status == 200 and body["deleted"] is True
    assert await enterprises.get_integration(running_agent.parts.pool, "100", "retailcrm") is None


async def test_retailcrm_unknown_caller_switches_save_and_show(running_agent: Agent, fake_rc: FakeRetailCrm) -> None:
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        async with http.get(f"{b}/retailcrm.json") as resp:
            shown = (await resp.json())["settings"]
        # off by default, the order method "phone"
        assert shown["create_customers"] is False and shown["create_orders"] is False
        assert shown["order_method"] == "phone"
        token = await csrf(http, f"{b}/retailcrm")
        form = {"csrf_token": token, "action": "save", "create_customers": "true", "create_orders": "true"}
        async with http.post(f"{b}/retailcrm", data={**form, "order_method": "call"}) as resp:
            assert resp.status == 200
        saved = await stored(running_agent)
        assert saved["create_customers"] is True and saved["create_orders"] is True
        assert saved["order_method"] == "call" and saved["api_key"] == API_KEY
        async with http.get(f"{b}/retailcrm") as resp:
            html = await resp.text()
        assert 'name="create_customers" value="true" checked' in html
        assert 'name="create_orders" value="true" checked' in html and 'name="order_method" value="call"' in html
        # a bad method is refused beside its field; switching off is kept
        async with http.post(f"{b}/retailcrm", data={**form, "order_method": "Phone Orders"}) as resp:
            assert resp.status == 400 and 'id="error-order_method"' in await resp.text()
        status, _ = await post(http, f"{b}/retailcrm", token, action="save", create_orders="false")
        assert status == 200 and (await stored(running_agent))["create_orders"] is False


async def test_legacy_settings_are_shown_and_saved_in_the_new_layout(running_agent: Agent) -> None:
    """An old record (seeds 001/003: api_url, client_id as the module code, user_mappings with numbers, `enabled`
    as a string, no time zone, last_sync/version) is shown and saved without error, in the agent's layout, its
    unknown keys kept; the page says which time zone it uses."""
    await enterprises.put(running_agent.parts.pool, "100", "Shop")
    legacy = {
        "api_url": "https://shop.retailcrm.ru/api/v5",
        "api_key": API_KEY,
        "enabled": "true",
        "client_id": "vochi-asterisk",
        "user_mappings": {"150": 7, "151": None},
        "last_sync": "2025-01-09T19:20:00Z",
        "version": "1.0",
    }
    async with running_agent.parts.pool.acquire() as conn:  # as the old system wrote it: the key in clear
        await conn.execute(
            "UPDATE enterprises SET integrations_config = jsonb_build_object('retailcrm', $1::jsonb)"
            " WHERE number = '100'",
            legacy,
        )
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        async with http.get(f"{b}/retailcrm.json") as resp:
            assert resp.status == 200
            data = await resp.json()
        assert data["legacy"] is True and API_KEY not in str(data)
        assert data["settings"]["domain"] == "https://shop.retailcrm.ru"
        assert data["settings"]["user_extensions"] == {"7": "150"}
        assert data["settings"]["code"] == "vochi-asterisk" and data["settings"]["enabled"] is True
        assert data["settings"]["timezone"] == "Europe/Moscow" and data["timezone_from"] == "default"
        assert data["kept"] == {"last_sync": "2025-01-09T19:20:00Z", "version": "1.0"}
        async with http.get(f"{b}/retailcrm") as resp:
            html = await resp.text()
            assert resp.status == 200 and 'id="timezone-from"' in html and "last_sync" in html
            assert API_KEY not in html
        token = await csrf(http, f"{b}/retailcrm")
        status, _ = await post(http, f"{b}/retailcrm", token, action="save")
        assert status == 200
        async with http.get(f"{b}/retailcrm.json") as resp:
            after = await resp.json()
        assert after["legacy"] is False and after["timezone_from"] is None
    saved = await stored(running_agent)
    assert "api_url" not in saved and "user_mappings" not in saved
    assert saved["domain"] == "https://shop.retailcrm.ru" and saved["user_extensions"] == {"7": "150"}
    assert saved["api_key"] == API_KEY and saved["code"] == "vochi-asterisk" and saved["enabled"] is True
    assert saved["timezone"] == "Europe/Moscow" and len(saved["client_id"]) >= 32
    assert saved["last_sync"] == "2025-01-09T19:20:00Z" and saved["version"] == "1.0"


async def test_a_legacy_record_takes_the_enterprise_time_zone(running_agent: Agent) -> None:
    pool = running_agent.parts.pool
    await enterprises.put(pool, "100", "Shop")
    await pool.execute(
        "UPDATE enterprises SET integrations_config = jsonb_build_object('retailcrm', $1::jsonb) WHERE number = '100'",
        {"domain": "https://shop.retailcrm.ru", "api_key": API_KEY, "enabled": True},
    )
    await pool.execute(
        "INSERT INTO routing_rules (enterprise_number, rules) VALUES ('100', $1::jsonb)", {"timezone": "Asia/Tokyo"}
    )
    async with (
        client(running_agent, "100") as http,
        http.get(f"{base(running_agent)}/admin/100/retailcrm.json") as resp,
    ):
        data = await resp.json()
    assert data["settings"]["timezone"] == "Asia/Tokyo" and data["timezone_from"] == "enterprise"


async def test_viewer_sees_but_cannot_change(running_agent: Agent, fake_rc: FakeRetailCrm) -> None:
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    async with FakeAmoCrm() as amo:
        settings = await configure_amocrm(running_agent.parts.pool, running_agent.config.agent.state_dir, amo)
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http, http.get(f"{b}/amocrm.json") as resp:
        assert settings.webhook_secret in (await resp.json())["webhook_url"]
    async with client(running_agent, "100", role="viewer") as http:
        for page in ("retailcrm", "managers", "amocrm"):
            async with http.get(f"{b}/{page}") as resp:
                html = await resp.text()
                assert resp.status == 200, (page, html)
                assert API_KEY not in html and settings.webhook_secret not in html
                assert '<button type="submit" name="action"' not in html and 'id="save-mapping"' not in html
        async with http.get(f"{b}/amocrm.json") as resp:
            assert (await resp.json())["webhook_url"] is None  # it carries the webhook secret
        token = await csrf(http, f"{b}/retailcrm")
        for page, fields in (
            ("retailcrm", {"action": "save", "popup_in": "false"}),
            ("retailcrm", {"action": "register"}),
            ("managers", {"user_extensions": {"7": "151"}}),
            ("amocrm", {"action": "disconnect"}),
        ):
            async with http.post(f"{b}/{page}", json=fields, headers={"X-CSRF-Token": token}) as resp:
                assert resp.status == 403, page
    assert (await stored(running_agent))["popup_in"] is True
    assert not fake_rc.modules


async def seed_extensions(agent: Agent) -> None:
    await agent.parts.pool.execute(
        "INSERT INTO user_internal_phones (enterprise_number, phone_number, display_name) VALUES"
        " ('100', '150', 'Anna'), ('100', '151', ''), ('100', '152', '') ON CONFLICT DO NOTHING"
    )


def codes(fake: FakeRetailCrm) -> dict[str, str]:
    module = fake.modules["pbx-agent"]
    return {str(c["userId"]): str(c["code"]) for c in module["integrations"]["telephony"]["additionalCodes"]}


async def test_managers_reassign_and_sync_additional_codes(running_agent: Agent, fake_rc: FakeRetailCrm) -> None:
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    await seed_extensions(running_agent)
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        async with http.get(f"{b}/managers") as resp:
            html = await resp.text()
            assert resp.status == 200, html
            assert '<span class="phone-text">150</span>' in html and "150 (" in html and "(free" not in html
        async with http.get(f"{b}/managers.json") as resp:
            data = await resp.json()
        assert data["crm"] == "retailcrm"
        assert {m["user_id"]: m["extension"] for m in data["managers"]} == {"7": "150", "8": "151", "9": "152"}
        assert data["last_synced"] is None
        token = await csrf(http, f"{b}/managers")
        status, body = await post(http, f"{b}/managers", token, crm="retailcrm", user_extensions={"8": "150"})
        assert status == 200 and body["sync"] == {"ok": False, "error": "the telephony module is not registered"}
        status, body = await post(http, f"{b}/retailcrm", token, action="register")
        assert status == 200
        status, body = await post(http, f"{b}/managers", token, crm="retailcrm", user_extensions={"7": "150"})
        assert status == 200 and body["sync"]["ok"]
        status, body = await post(http, f"{b}/managers", token, crm="retailcrm", user_extensions={"8": "150"})
        assert status == 200 and body["ok"], body
        assert body["moved"] == [
            {"extension": "150", "from_user": "7", "to_user": "8", "from_name": "User7 Test", "to_name": "User8 Test"}
        ]
        assert body["sync"]["ok"] is True, body
        assert codes(fake_rc) == {"8": "150", "9": "152"}
        # the form: only what differs from what was shown is a change; an empty choice unassigns
        async with http.post(
            f"{b}/managers", data={"csrf_token": token, "crm": "retailcrm", "user.7": "", "user.8": "150", "user.9": ""}
        ) as resp:
            assert resp.status == 200
            html = await resp.text()
            assert '<span class="phone-text">not assigned</span>' in html and "152 (free)" in html
        assert codes(fake_rc) == {"8": "150"}
        status, body = await post(
            http, f"{b}/managers", token, crm="retailcrm", user_extensions={"7": "151", "9": "151"}
        )
        assert status == 400 and body["field"] == "user.9"
        async with http.get(f"{b}/managers.json") as resp:
            assert (await resp.json())["last_synced"] is not None


async def test_a_visit_imports_nothing_and_registration_adopts_the_codes_registered_at_retailcrm(
    running_agent: Agent, fake_rc: FakeRetailCrm
) -> None:
    """A page view changes nothing, not even an empty mapping: what RetailCRM's module has is taken in once, when
    «Save and register» adopts the module (admin/retailcrm_adopt.py), which the page then shows without asking."""
    await configure_retailcrm(
        running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc, user_extensions={}
    )
    fake_rc.modules["pbx-agent"] = {
        "code": "pbx-agent",
        "integrations": {"telephony": {"additionalCodes": [{"userId": 7, "code": "151"}]}},
    }
    url = f"{base(running_agent)}/admin/100/managers"
    async with client(running_agent, "100", headers={"Accept-Language": "ru"}) as http:
        async with http.get(url) as resp:
            html = await resp.text()
        assert (
            '<span class="phone-text">не назначен</span>' in html and '<span class="phone-text">151</span>' not in html
        )
        assert (await stored(running_agent))["user_extensions"] == {}
        token = await csrf(http, f"{base(running_agent)}/admin/100/retailcrm")
        status, body = await post(http, f"{base(running_agent)}/admin/100/retailcrm", token, action="register")
        assert status == 200 and body["adopted"]["imported"] == {"7": "151"}, body
        assert (await stored(running_agent))["user_extensions"] == {"7": "151"}
        before = len(fake_rc.requests)
        async with http.get(f"{url}.json") as resp:
            listing = await resp.json()
        assert len(fake_rc.requests) == before  # the users were fresh; the registration told the module's codes
        assert {m["user_id"]: m["crm_extension"] for m in listing["managers"]}["7"] == "151"
        assert listing["module_read_at"] and listing["differences"] == []


async def test_amocrm_page_connects_by_code_and_token_and_disconnects(running_agent: Agent) -> None:
    async with FakeAmoCrm() as fake:
        fake.users.append({"id": 7, "name": "Ivan Petrov", "email": "ivan@example.com", "rights": {"is_active": True}})
        await configure_amocrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake)
        await seed_extensions(running_agent)
        b = f"{base(running_agent)}/admin/100"
        async with client(running_agent, "100") as http:
            async with http.get(f"{b}/amocrm.json") as resp:
                data = await resp.json()
            assert data["connection"]["light"] == "not_connected"
            assert data["redirect_uri"].endswith("/amocrm/oauth/callback")
            assert data["settings"]["client_secret"] != fake.client_secret
            assert "/amocrm/webhook/100/" in data["webhook_url"]
            token = await csrf(http, f"{b}/amocrm")
            status, body = await post(http, f"{b}/amocrm", token, action="code", code="not-a-code")
            assert status == 400 and body["field"] == "code"
            status, body = await post(http, f"{b}/amocrm", token, action="code", code=fake.issue_code())
            assert status == 200, body
            async with http.get(f"{b}/amocrm") as resp:
                html = await resp.text()
            assert "dot-connected" in html and "Sales" in html and fake.client_secret not in html
            access = await running_agent.parts.pool.fetchval("SELECT access_token FROM amocrm_tokens")
            assert access and access not in html
            # settings: pipeline and status, tags; an invalid value beside its field, nothing saved
            status, body = await post(
                http,
                f"{b}/amocrm",
                token,
                action="save",
                pipeline_id="3001",
                status_id="40002",
                lead_tags="calls, pbx",
                unknown_caller="contact_and_lead",
            )
            assert status == 200, body
            async with http.post(
                f"{b}/amocrm", data={"csrf_token": token, "action": "save", "task_due_minutes": "0"}
            ) as resp:
                assert resp.status == 400 and 'id="error-task_due_minutes"' in await resp.text()
            async with http.get(f"{b}/amocrm.json") as resp:
                settings = (await resp.json())["settings"]
            assert (settings["pipeline_id"], settings["status_id"]) == (3001, 40002)
            assert settings["lead_tags"] == "calls, pbx" and settings["task_due_minutes"] == 15
            assert settings["route_by_deal"] is True  # smart redirect by the open deal: on unless switched off
            async with http.get(f"{b}/amocrm") as resp:
                assert 'name="route_by_deal"' in await resp.text()
            status, body = await post(http, f"{b}/amocrm", token, action="save", route_by_deal="off")
            assert status == 200, body
            async with http.get(f"{b}/amocrm.json") as resp:
                assert (await resp.json())["settings"]["route_by_deal"] is False
            # managers for amoCRM
            async with http.get(f"{b}/managers.json?crm=amocrm") as resp:
                listing = await resp.json()
            assert {m["user_id"] for m in listing["managers"]} >= {"1", "7"}
            status, body = await post(http, f"{b}/managers", token, crm="amocrm", user_extensions={"1": "152"})
            assert status == 200 and body["ok"], body
            async with http.get(f"{b}/managers?crm=amocrm") as resp:
                assert '<span class="phone-text">152</span>' in await resp.text()
            status, _ = await post(http, f"{b}/amocrm", token, action="disconnect")
            assert status == 200
            async with http.get(f"{b}/amocrm.json") as resp:
                assert (await resp.json())["connection"]["light"] == "not_connected"
            status, body = await post(http, f"{b}/amocrm", token, action="token", token="garbage")
            assert status == 400 and body["field"] == "token"
            status, _ = await post(http, f"{b}/amocrm", token, action="token", token=fake.issue_long_lived())
            assert status == 200
            async with http.get(f"{b}/amocrm.json") as resp:
                connection = (await resp.json())["connection"]
            assert connection["kind"] == "long_lived" and connection["light"] in ("connected", "expiring")


async def test_the_language_of_the_crm_texts_is_chosen_on_the_page(
    running_agent: Agent, fake_rc: FakeRetailCrm
) -> None:
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        async with http.get(f"{b}/retailcrm.json") as resp:
            assert (await resp.json())["settings"]["language"] in ("", "ru")  # RetailCRM: Russian by default
        token = await csrf(http, f"{b}/retailcrm")
        async with http.post(f"{b}/retailcrm", data={"csrf_token": token, "action": "save", "language": "en"}) as resp:
            assert resp.status == 200
        assert (await stored(running_agent))["language"] == "en"
        async with http.get(f"{b}/retailcrm", headers={"Accept-Language": "ru"}) as resp:
            html = await resp.text()
        assert '<option value="en" selected>английский</option>' in html
        async with http.post(f"{b}/retailcrm", data={"csrf_token": token, "action": "save", "language": "de"}) as resp:
            assert resp.status == 400 and 'id="error-language"' in await resp.text()
