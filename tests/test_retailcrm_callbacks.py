"""Parsing what RetailCRM sends us: makeCallUrl, changeUserStatusUrl, actions.activity."""

from __future__ import annotations

import pytest

from connectors.retailcrm.callbacks import (
    CallbackError,
    client_id_matches,
    parse_activity,
    parse_make_call,
    parse_user_status,
)

CID = "c" * 40


def test_make_call_full_and_minimal() -> None:
    call = parse_make_call(
        {"clientId": CID, "code": "101", "userId": "7", "phone": "+7 (916) 123-45-67", "externalPhone": "+74951112233"}
    )
    assert (call.client_id, call.code, call.user_id) == (CID, "101", "7")
    assert call.phone == "+79161234567"
    assert call.external_phone == "+74951112233"
    call = parse_make_call({"clientId": CID, "code": "101", "phone": "89161234567", "externalPhone": ""})
    assert call.user_id is None and call.external_phone is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"code": "101", "phone": "1234"}, "clientId"),
        ({"clientId": CID, "phone": "1234"}, "code"),
        ({"clientId": CID, "code": "101"}, "phone"),
        ({"clientId": CID, "code": "101", "phone": "call me"}, "phone"),
        ({"clientId": CID, "code": "10 1", "phone": "1234"}, "code"),
        ({"clientId": CID, "code": "101", "phone": "1234", "userId": "x"}, "userId"),
        ({"clientId": CID, "code": "101", "phone": "1234", "externalPhone": "abc"}, "externalPhone"),
    ],
)
def test_make_call_errors_name_the_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(CallbackError) as err:
        parse_make_call(params)
    assert err.value.field == field


def test_user_status() -> None:
    change = parse_user_status({"clientId": CID, "userId": "7", "code": "101", "status": "dinner"})
    assert (change.user_id, change.code, change.status) == ("7", "101", "dinner")
    with pytest.raises(CallbackError) as err:
        parse_user_status({"clientId": CID, "userId": "7", "status": "asleep"})
    assert err.value.field == "status"


def test_activity() -> None:
    a = parse_activity(
        {"clientId": CID, "activity": '{"active": true, "freeze": false}', "systemUrl": "https://shop.retailcrm.ru"}
    )
    assert a.live and a.system_url == "https://shop.retailcrm.ru"
    assert not parse_activity({"clientId": CID, "activity": '{"active": true, "freeze": true}'}).live
    for bad in ("{", "[]", '{"active": "yes"}'):
        with pytest.raises(CallbackError) as err:
            parse_activity({"clientId": CID, "activity": bad})
        assert err.value.field == "activity"


def test_client_id_comparison() -> None:
    assert client_id_matches(CID, CID)
    assert not client_id_matches(CID, CID[:-1] + "d")


async def test_fake_crm_click_to_call_reaches_our_parser() -> None:
    from aiohttp import web

    from connectors.retailcrm.client import RetailCrmClient
    from connectors.retailcrm.models import ModuleUrls
    from connectors.retailcrm.settings import parse
    from tests.fakes.retailcrm import FakeRetailCrm

    got: list[dict[str, str]] = []

    async def make_call(request: web.Request) -> web.Response:
        got.append(dict(request.query))
        return web.json_response({"success": True})

    app = web.Application()
    app.router.add_get("/make-call", make_call)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    ours = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with FakeRetailCrm(api_key="k" * 32) as crm:
            settings = parse({"domain": crm.url, "api_key": "k" * 32, "client_id": CID, "timezone": "Europe/Moscow"})
            async with RetailCrmClient(settings) as client:
                await client.register_module(
                    ModuleUrls(base_url=ours, logo=f"{ours}/logo.svg", make_call=f"{ours}/make-call")
                )
            status, _ = await crm.click_to_call("101", "+79161234567", user_id=7)
    finally:
        await runner.cleanup()
    assert status == 200
    call = parse_make_call(got[0])
    assert client_id_matches(call.client_id, CID)
    assert (call.code, call.phone, call.user_id) == ("101", "+79161234567", "7")
