"""RetailCrmClient lookups and setup calls (credentials, module, users, manager) against the fake."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import CrmError, Delivery, SendOutcome
from connectors.retailcrm.client import RetailCrmClient
from connectors.retailcrm.models import REQUIRED_METHODS, ModuleUrls
from connectors.retailcrm.settings import RetailCrmSettings, parse
from tests.fakes.retailcrm import ALL_METHODS, FakeRetailCrm

KEY = "Zq8PLr2mWx7TaK4nB9vC1dE6fG3hJ5kY"
CLIENT_ID = "cid-" + "7" * 28
URLS = ModuleUrls(
    base_url="https://pbx.example.com",
    logo="https://pbx.example.com/static/logo.svg",
    make_call="https://pbx.example.com/retailcrm/make-call",
    change_user_status="https://pbx.example.com/retailcrm/status",
    account="https://pbx.example.com/admin/retailcrm",
    activity="/retailcrm/activity",
)


def settings_for(fake: FakeRetailCrm, **over: Any) -> RetailCrmSettings:
    data: dict[str, Any] = {
        "domain": fake.url,
        "api_key": KEY,
        "client_id": CLIENT_ID,
        "timezone": "Europe/Moscow",
        "user_extensions": {"7": "101", "8": "102"},
        "site": "shop-1",
        "external_phone": "+74951112233",
    }
    data.update(over)
    return parse(data)


@pytest.fixture
async def crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=KEY, sites=["shop-1"]) as fake:
        fake.add_users(10)
        yield fake


@pytest.fixture
async def client(crm: FakeRetailCrm) -> AsyncIterator[RetailCrmClient]:
    seen: list[tuple[str, SendOutcome]] = []
    async with RetailCrmClient(settings_for(crm), on_exchange=lambda n, o: seen.append((n, o))) as c:
        c.seen = seen  # type: ignore[attr-defined]
        yield c


# -- find_responsible ------------------------------------------------------------------------------


async def test_find_responsible(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    crm.set_manager("8 (916) 123-45-67", {"id": 7, "firstName": "Anna", "lastName": "Petrova", "code": "101"})
    who = await client.find_responsible("+79161234567")
    assert who is not None
    assert (who.user_id, who.name, who.code) == ("7", "Anna Petrova", "101")
    req = crm.requests[-1]
    assert req.method == "GET"
    assert req.query == {"phone": "+79161234567", "details": "0", "ignoreStatus": "0"}
    assert await client.find_responsible("+70000000000") is None


async def test_busy_manager_only_with_ignore_status(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    crm.set_manager("+79161234567", {"id": "9", "firstName": "Ivan", "code": "109", "status": "dinner"})
    assert await client.find_responsible("+79161234567") is None
    who = await client.find_responsible("+79161234567", ignore_status=True)
    assert who is not None and who.user_id == "9" and who.code == "109"


async def test_find_responsible_failure_raises(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    crm.fail_next(1, status=503, retry_after=1)
    with pytest.raises(CrmError) as err:
        await client.find_responsible("+79161234567")
    assert err.value.outcome.status == "transient"
    assert err.value.outcome.retry_after == 1.0


# -- test_connection ------------------------------------------------------------------------------


async def test_connection_ok(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    report = await client.test_connection()
    assert report.ok, report.reason
    assert report.missing == () and report.missing_optional == ()
    assert report.site_access == "access_full"
    assert report.sites == ("shop-1",)
    assert crm.requests[-1].path == "/api/credentials"


async def test_connection_wrong_key(crm: FakeRetailCrm) -> None:
    async with RetailCrmClient(settings_for(crm, api_key="bad" * 10)) as c:
        report = await c.test_connection()
    assert not report.ok
    assert report.reason == "wrong API key"
    assert report.http_status == 403


async def test_connection_without_telephony_permission() -> None:
    allowed = [m for m in ALL_METHODS if "telephony" not in m]
    async with FakeRetailCrm(api_key=KEY, credentials=allowed) as fake, RetailCrmClient(settings_for(fake)) as c:
        report = await c.test_connection()
        assert not report.ok
        assert report.missing == tuple(m for m in REQUIRED_METHODS if "telephony" in m)
        assert report.reason is not None and "/api/telephony/call/event" in report.reason
        # and the real call is refused the same way
        with pytest.raises(CrmError) as err:
            await c.find_responsible("+79161234567")
        assert err.value.outcome.error == "Access denied."
        assert err.value.outcome.status == "permanent"


async def test_connection_accepts_versioned_and_concrete_code_paths() -> None:
    listed = [
        "/api/v5/telephony/call/event",
        "/api/telephony/calls/upload/",
        "telephony/manager",
        "/api/integration-modules/pbx-agent/edit",
    ]
    async with FakeRetailCrm(api_key=KEY, credentials=listed) as fake, RetailCrmClient(settings_for(fake)) as c:
        report = await c.test_connection()
    assert report.ok, report.reason
    assert report.missing_optional == ("/api/integration-modules/{code}", "/api/users")


async def test_connection_unreachable() -> None:
    fake = FakeRetailCrm(api_key=KEY)
    await fake.start()
    settings = settings_for(fake)
    await fake.stop()
    async with RetailCrmClient(settings) as c:
        report = await c.test_connection()
    assert not report.ok
    assert report.reason is not None and report.reason.startswith("cannot reach the account")


# -- the module -----------------------------------------------------------------------------------


async def test_register_module_creates_then_updates(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    first = await client.register_module(URLS)
    assert first.created
    assert first.not_exist_user_ids == ()
    again = await client.register_module(URLS)
    assert not again.created
    req = crm.requests[-1]
    assert (req.method, req.path) == ("POST", "/api/v5/integration-modules/pbx-agent/edit")
    assert req.content_type == "application/x-www-form-urlencoded"
    module = req.json_field("integrationModule")
    assert module["code"] == "pbx-agent"
    assert module["clientId"] == CLIENT_ID
    assert module["baseUrl"] == URLS.base_url
    assert module["logo"].endswith(".svg")
    assert module["actions"] == {"activity": "/retailcrm/activity"}
    tel = module["integrations"]["telephony"]
    assert tel["makeCallUrl"] == URLS.make_call
    assert tel["changeUserStatusUrl"] == URLS.change_user_status
    assert tel["additionalCodes"] == [{"userId": 7, "code": "101"}, {"userId": 8, "code": "102"}]
    assert tel["externalPhones"] == [{"siteCode": "shop-1", "externalPhone": "+74951112233"}]
    assert (tel["inputEventSupported"], tel["outputEventSupported"], tel["hangupEventSupported"]) == (True, True, True)
    # the client id is a secret too: it identifies RetailCRM's callbacks
    assert all(CLIENT_ID not in repr(o) for _, o in client.seen)  # type: ignore[attr-defined]


async def test_register_module_reports_unknown_users(crm: FakeRetailCrm) -> None:
    async with RetailCrmClient(settings_for(crm, user_extensions={"7": "101", "99": "199"})) as c:
        result = await c.register_module(URLS)
    assert result.not_exist_user_ids == ("99",)


@pytest.mark.parametrize(
    ("urls", "field"),
    [
        (
            ModuleUrls(
                base_url="https://pbx.example.com",
                logo="https://pbx.example.com/logo.png",
                make_call="https://pbx.example.com/c",
            ),
            "logo",
        ),
        (
            ModuleUrls(base_url="", logo="https://pbx.example.com/logo.svg", make_call="https://pbx.example.com/c"),
            "baseUrl",
        ),
        (
            ModuleUrls(
                base_url="https://pbx.example.com",
                logo="https://pbx.example.com/logo.svg",
                make_call="https://pbx.example.com/c",
                activity=None,
            ),
            None,
        ),
    ],
)
async def test_module_edit_rules(client: RetailCrmClient, urls: ModuleUrls, field: str | None) -> None:
    if field is None:
        assert (await client.register_module(urls)).created
        return
    with pytest.raises(CrmError) as err:
        await client.register_module(urls)
    outcome = err.value.outcome
    assert (outcome.status, outcome.http_status) == ("permanent", 400)
    assert outcome.error is not None and outcome.error.startswith("Errors in the entity format")
    assert field in outcome.error


async def test_fake_refuses_unknown_actions_and_code_prefix(crm: FakeRetailCrm) -> None:
    import json

    import httpx

    module = {
        "code": "pbx-agent",
        "clientId": "x" * 20,
        "baseUrl": "https://a.example",
        "logo": "https://a.example/l.svg",
        "actions": {"activity": "/a", "install": "/i"},
    }
    async with httpx.AsyncClient(base_url=crm.url, headers={"X-API-KEY": KEY}) as raw:
        r = await raw.post("/api/v5/integration-modules/pbx-agent/edit", data={"integrationModule": json.dumps(module)})
        assert r.status_code == 400 and "actions" in r.json()["errors"]
        module = {**module, "actions": {"activity": "/a"}, "integrationCode": "other"}
        r = await raw.post("/api/v5/integration-modules/pbx-agent/edit", data={"integrationModule": json.dumps(module)})
        assert r.json()["errors"] == {"code": "Code prefix must match integrationCode"}
        r = await raw.post("/api/v5/integration-modules/pbx-agent/edit", data={"x": "1"})
        assert r.json()["errorMsg"] == "Parameter 'integrationModule' is missing"
        r = await raw.post("/api/v5/integration-modules/pbx-agent/edit", data={"integrationModule": "{no"})
        assert (r.status_code, r.json()["errorMsg"]) == (400, "Errors in the entity format")


async def test_unknown_module_code_and_deactivate(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    assert await client.get_module() is None
    assert await client.deactivate_module() is None
    await client.register_module(URLS)
    result = await client.deactivate_module()
    assert result is not None and not result.created
    stored = crm.modules["pbx-agent"]
    assert stored["active"] is False
    assert stored["baseUrl"] == URLS.base_url  # the rest is kept
    assert "native" not in stored and "freeze" not in stored
    # a switched-off module means telephony is off for the account
    event = {"phone": "+79161234567", "type": "in", "codes": ["101"]}
    outcome = await client.send([Delivery("k", "0367", "retailcrm", "call_event", {"event": event})])
    assert outcome.error == "Telephony not enabled"


async def test_set_additional_codes_replaces_the_list(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    with pytest.raises(CrmError):
        await client.set_additional_codes({"7": "201"})
    await client.register_module(URLS)
    await client.set_additional_codes({"7": "201", "9": "209"})
    tel = crm.modules["pbx-agent"]["integrations"]["telephony"]
    assert tel["additionalCodes"] == [{"userId": 7, "code": "201"}, {"userId": 9, "code": "209"}]
    assert tel["makeCallUrl"] == URLS.make_call


# -- users ----------------------------------------------------------------------------------------


async def test_users_paginated(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    crm.users.clear()
    crm.add_users(250)
    page = await client.list_users(1)
    assert len(page.users) == 100 and page.has_next
    assert page.users[0].name == "User1 Test"
    last = await client.list_users(3)
    assert len(last.users) == 50 and not last.has_next
    users = await client.all_users()
    assert [u.id for u in users] == [str(i) for i in range(1, 251)]
    assert crm.requests[-1].query == {"page": "3", "limit": "100"}


async def test_users_bad_limit_is_refused(client: RetailCrmClient) -> None:
    with pytest.raises(CrmError) as err:
        await client.list_users(1, limit=30)
    assert err.value.outcome.error is not None and "Validation error" in err.value.outcome.error


# -- every exchange is visible, none shows the key --------------------------------------------------


async def test_exchange_hook_and_logs_never_show_secrets(
    crm: FakeRetailCrm, client: RetailCrmClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.test_connection()
    await client.register_module(URLS)
    await client.find_responsible("+79161234567")
    crm.fail_next(1, status=500, body=f"<html>oops apiKey={KEY}</html>")
    with pytest.raises(CrmError):
        await client.list_users(1)
    names = [n for n, _ in client.seen]  # type: ignore[attr-defined]
    assert names == ["credentials", "module_edit", "manager", "users"]
    for _, outcome in client.seen:  # type: ignore[attr-defined]
        assert KEY not in repr(outcome)
        assert outcome.duration_ms > 0
    assert KEY not in caplog.text and CLIENT_ID not in caplog.text
    assert caplog.text.count("/api/") >= 4
