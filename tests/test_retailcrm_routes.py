"""RetailCRM setup routes against the whole agent, a real PostgreSQL and the fake RetailCRM over loopback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.store.secretbox import load_or_create_secret
from agent.web.tokens import TokenSigner
from tests.fakes.retailcrm import ALL_METHODS, FakeRetailCrm
from tests.rc_agent import CLIENT_ID, ENTERPRISE, KEY, admin_token, call, configure, rc, started

CODE = "pbx-agent"


@pytest.fixture
async def crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=KEY) as fake:
        fake.add_users(3)
        yield fake


@pytest.fixture
async def agent(
    db_dsn: str, make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Agent]:
    caplog.set_level(logging.DEBUG)
    async with started(make_config, db_dsn) as a:
        yield a


async def logged(agent: Agent, event: str | None = None) -> list[dict[str, Any]]:
    rows = await agent.parts.pool.fetch(
        "SELECT event_type, status, error_message, request_data::text AS req, response_data::text AS resp"
        " FROM integration_logs WHERE $1::text IS NULL OR event_type = $1 ORDER BY id",
        event,
    )
    return [dict(r) for r in rows]


async def assert_key_nowhere(agent: Agent, caplog: pytest.LogCaptureFixture, *answers: Any) -> None:
    for row in await logged(agent):
        assert KEY not in json.dumps(row)
    assert KEY not in caplog.text
    for a in answers:
        assert KEY not in json.dumps(a)


# -- test --------------------------------------------------------------------------------------------


async def test_connection_lists_methods_or_says_why(
    agent: Agent, crm: FakeRetailCrm, caplog: pytest.LogCaptureFixture
) -> None:
    token = admin_token(agent)
    await configure(agent, crm, token)
    status, ok = await call(agent, "POST", rc("/test"), token)
    assert status == 200 and ok["ok"] is True and ok["reason"] is None
    assert "/api/telephony/call/event" in ok["methods"]

    # a posted key is tested without being saved; masked secrets mean "the stored one"
    wrong = {"domain": crm.url, "api_key": "W" * 32, "client_id": "abcd…5a5a", "timezone": "Europe/Moscow"}
    status, bad = await call(agent, "POST", rc("/test"), token, wrong)
    assert (status, bad["ok"], bad["reason"], bad["http_status"]) == (200, False, "wrong API key", 403)

    crm.credentials = [m for m in ALL_METHODS if "telephony" not in m]
    status, no_tel = await call(agent, "POST", rc("/test"), token)
    assert no_tel["ok"] is False
    assert no_tel["missing"] == ["/api/telephony/call/event", "/api/telephony/calls/upload", "/api/telephony/manager"]
    assert "may not call /api/telephony/call/event" in no_tel["reason"]

    crm.account_exists = False
    status, gone = await call(agent, "POST", rc("/test"), token)
    assert gone["ok"] is False and "no such RetailCRM account" in gone["reason"]

    rows = await logged(agent, "test_connection")
    assert [r["status"] for r in rows] == ["success", "error", "error", "error"]
    assert rows[2]["error_message"] == no_tel["reason"]
    status, invalid = await call(agent, "POST", rc("/test"), token, {"domain": crm.url, "api_key": "x"})
    assert status == 400 and invalid["field"] == "api_key"
    await assert_key_nowhere(agent, caplog, ok, bad, no_tel, gone, invalid)


async def test_connection_needs_configuration(agent: Agent) -> None:
    token = admin_token(agent)
    assert (await call(agent, "POST", rc("/test"), token))[0] == 404
    await call(agent, "PUT", f"/api/enterprises/{ENTERPRISE}", token, {"name": "x"})
    status, body = await call(agent, "POST", rc("/test"), token)
    assert status == 404 and "not configured" in body["error"]
    assert (await call(agent, "POST", rc("/test")))[0] == 401


# -- registration ------------------------------------------------------------------------------------


def account_token(module: dict[str, Any]) -> tuple[str, dict[str, list[str]]]:
    url = urlsplit(module["accountUrl"])
    query = parse_qs(url.query)
    return query["token"][0], query


async def test_register_reregister_and_deregister(
    agent: Agent, crm: FakeRetailCrm, caplog: pytest.LogCaptureFixture
) -> None:
    token = admin_token(agent)
    await configure(agent, crm, token, user_extensions={"1": "101", "2": "102"}, popup_out=False)
    public = agent.config.agent.public_url

    status, first = await call(agent, "POST", rc("/register"), token)
    assert status == 200, first
    assert first["created"] is True and first["code"] == CODE
    module = crm.modules[CODE]  # it passed the fake's contract checks (else the fake answers 400)
    assert module["baseUrl"] == public
    assert module["clientId"] == CLIENT_ID
    assert module["actions"] == {"activity": "/retailcrm/activity"}
    telephony = module["integrations"]["telephony"]
    assert telephony["makeCallUrl"] == f"{public}/retailcrm/make-call"
    assert telephony["changeUserStatusUrl"] == f"{public}/retailcrm/user-status"
    assert (telephony["inputEventSupported"], telephony["outputEventSupported"], telephony["hangupEventSupported"]) == (
        True,
        False,
        True,
    )
    assert sorted(telephony["additionalCodes"], key=lambda c: c["userId"]) == [
        {"userId": 1, "code": "101"},
        {"userId": 2, "code": "102"},
    ]

    # the logo is an SVG the agent serves
    assert module["logo"] == f"{public}/static/retailcrm-logo.svg"
    async with aiohttp.ClientSession() as s, s.get(module["logo"]) as resp:
        assert resp.status == 200 and resp.content_type == "image/svg+xml"
        assert (await resp.text()).lstrip().startswith("<svg")

    # accountUrl: the admin page, this enterprise, a one-year enterprise token from "retailcrm"
    old, query = account_token(module)
    assert module["accountUrl"].startswith(f"{public}/admin/retailcrm?")
    assert query["enterprise_number"] == [ENTERPRISE]
    principal = TokenSigner(load_or_create_secret(agent.config.agent.state_dir)).verify(old)
    assert (principal.enterprise, principal.source) == (ENTERPRISE, "retailcrm")
    assert principal.token_id == first["account_token_id"]
    assert old not in json.dumps(first)  # the answer shows it masked
    assert (await call(agent, "GET", f"/api/enterprises/{ENTERPRISE}", old))[0] == 200
    assert (await call(agent, "GET", "/api/enterprises/200", old))[0] == 403

    status, second = await call(agent, "POST", rc("/register"), token)
    assert status == 200 and second["created"] is False
    new, _ = account_token(crm.modules[CODE])
    assert new != old
    status, body = await call(agent, "GET", f"/api/enterprises/{ENTERPRISE}", old)
    assert status == 401 and "revoked" in body["error"]
    assert (await call(agent, "GET", f"/api/enterprises/{ENTERPRISE}", new))[0] == 200

    status, gone = await call(agent, "DELETE", rc("/register"), token)
    assert status == 200 and gone == {"deactivated": True, "token_revoked": True}
    assert crm.modules[CODE]["active"] is False
    assert crm.modules[CODE]["clientId"] == CLIENT_ID  # the rest of the module is kept
    assert (await call(agent, "GET", f"/api/enterprises/{ENTERPRISE}", new))[0] == 401

    rows = await logged(agent)
    assert [(r["event_type"], r["status"]) for r in rows] == [
        ("adopt_module", "success"),  # the account has no pbx-agent module ...
        ("adopt_module", "success"),  # ... and no vochi-telephony either: ours is created
        ("register_module", "success"),
        ("register_module", "success"),
        ("deactivate_module", "success"),
        ("deactivate_module", "success"),
    ]
    for row in rows:  # neither the key nor an account token is stored in the log
        assert old not in row["req"] and new not in row["req"]
    await assert_key_nowhere(agent, caplog, first, second, gone)


async def test_register_refused_keeps_the_old_token(agent: Agent, crm: FakeRetailCrm) -> None:
    token = admin_token(agent)
    await configure(agent, crm, token)
    assert (await call(agent, "POST", rc("/register"), token))[0] == 200
    old, _ = account_token(crm.modules[CODE])
    crm.credentials = [m for m in ALL_METHODS if not m.endswith("/edit")]
    status, body = await call(agent, "POST", rc("/register"), token)
    assert status == 502 and body["error"] == "RetailCRM: Access denied."
    assert (await call(agent, "GET", f"/api/enterprises/{ENTERPRISE}", old))[0] == 200
    assert [r["status"] for r in await logged(agent, "register_module")] == ["success", "error"]


async def test_deregister_without_module(agent: Agent, crm: FakeRetailCrm) -> None:
    token = admin_token(agent)
    await configure(agent, crm, token)
    status, body = await call(agent, "DELETE", rc("/register"), token)
    assert status == 200 and body == {"deactivated": False, "token_revoked": True}


async def test_register_disabled_integration_is_refused(agent: Agent, crm: FakeRetailCrm) -> None:
    token = admin_token(agent)
    await configure(agent, crm, token, enabled=False)
    status, body = await call(agent, "POST", rc("/register"), token)
    assert status == 409 and "disabled" in body["error"]
    assert not crm.modules


# -- mapping ---------------------------------------------------------------------------------------


async def test_managers_merge_local_and_crm_codes(agent: Agent, crm: FakeRetailCrm) -> None:
    token = admin_token(agent)
    await configure(agent, crm, token, user_extensions={"1": "101", "2": "102", "9": "109"})
    assert (await call(agent, "POST", rc("/register"), token))[0] == 200
    crm.modules[CODE]["integrations"]["telephony"]["additionalCodes"] = [
        {"userId": "2", "code": "199"},
        {"userId": 3, "code": "103"},
    ]  # edited in RetailCRM meanwhile
    status, body = await call(agent, "GET", rc("/managers"), token)
    assert status == 200, body
    by_id = {m["user_id"]: m for m in body["managers"]}
    assert list(by_id) == ["1", "2", "3"]
    assert (by_id["1"]["extension"], by_id["1"]["source"], by_id["1"]["crm_extension"]) == ("101", "local", None)
    assert (by_id["2"]["extension"], by_id["2"]["crm_extension"], by_id["2"]["differs"]) == ("102", "199", True)
    assert (by_id["3"]["extension"], by_id["3"]["source"]) == ("103", "crm")
    assert by_id["1"]["name"] == "User1 Test"
    assert body["differences"] == [
        {"user_id": "1", "local": "101", "crm": None},
        {"user_id": "2", "local": "102", "crm": "199"},
        {"user_id": "3", "local": None, "crm": "103"},
        {"user_id": "9", "local": "109", "crm": None},
    ]
    assert body["unknown_users"] == ["9"]
    assert body["module_registered"] is True
    assert {r["event_type"] for r in await logged(agent)} == {"adopt_module", "register_module", "list_managers"}


async def test_put_extensions_reassigns_and_syncs_codes(
    agent: Agent, crm: FakeRetailCrm, db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = admin_token(agent)
    await configure(agent, crm, token, user_extensions={"1": "101", "2": "102"})
    assert (await call(agent, "POST", rc("/register"), token))[0] == 200
    notified: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(db_dsn)
    await listener.add_listener("integrations_config", lambda *args: notified.put_nowait(args[-1]))
    try:
        status, body = await call(agent, "PUT", rc("/extensions"), token, {"user_extensions": {"3": "101"}})
        assert await asyncio.wait_for(notified.get(), 5) == ENTERPRISE
    finally:
        await listener.close()
    assert status == 200, body
    assert body["user_extensions"] == {"2": "102", "3": "101"}
    assert body["moved"] == [{"extension": "101", "from_user": "1", "to_user": "3"}]
    assert body["sync"]["ok"] is True
    codes = crm.modules[CODE]["integrations"]["telephony"]["additionalCodes"]
    assert sorted(codes, key=lambda c: c["userId"]) == [{"userId": 2, "code": "102"}, {"userId": 3, "code": "101"}]
    # stored (through put_integration: the settings API shows it, secrets still masked)
    status, stored = await call(agent, "GET", f"/api/enterprises/{ENTERPRISE}/integrations/retailcrm", token)
    assert stored["user_extensions"] == {"2": "102", "3": "101"}
    assert stored["api_key"] != KEY

    status, body = await call(agent, "PUT", rc("/extensions"), token, {"user_extensions": {"2": None}})
    assert body["user_extensions"] == {"3": "101"} and body["moved"] == []

    status, body = await call(
        agent, "PUT", rc("/extensions"), token, {"user_extensions": {"1": "105", "2": "106"}, "replace": True}
    )
    assert body["user_extensions"] == {"1": "105", "2": "106"}

    status, dup = await call(agent, "PUT", rc("/extensions"), token, {"user_extensions": {"1": "7", "2": "7"}})
    assert status == 400 and dup["field"] == "user_extensions.2"
    status, bad = await call(agent, "PUT", rc("/extensions"), token, {"user_extensions": {"x": "7"}})
    assert status == 400 and bad["field"] == "user_extensions.x"
    status, bad = await call(agent, "PUT", rc("/extensions"), token, {"user_extensions": ["7"]})
    assert status == 400 and bad["field"] == "user_extensions"
    assert (await call(agent, "GET", f"/api/enterprises/{ENTERPRISE}/integrations/retailcrm", token))[1][
        "user_extensions"
    ] == {"1": "105", "2": "106"}
    assert [r["status"] for r in await logged(agent, "sync_codes")] == ["success"] * 6  # get + edit, 3 times
    await assert_key_nowhere(agent, caplog, body, stored)


async def test_put_extensions_without_module_saves_and_says_sync_failed(agent: Agent, crm: FakeRetailCrm) -> None:
    token = admin_token(agent)
    await configure(agent, crm, token)
    await call(
        agent,
        "PUT",
        f"/api/enterprises/{ENTERPRISE}/extensions",
        token,
        {"extensions": [{"extension": "101", "display_name": "Anna"}]},
    )
    status, body = await call(agent, "PUT", rc("/extensions"), token, {"user_extensions": {"1": "101"}})
    assert status == 200
    assert body["user_extensions"] == {"1": "101"} and body["unknown_extensions"] == []
    assert body["sync"] == {"ok": False, "error": "the telephony module is not registered"}


async def test_put_extensions_refuses_what_does_not_exist_naming_each_and_stores_nothing(
    agent: Agent, crm: FakeRetailCrm
) -> None:
    """The API checks as the Managers form does (admin/mapping_check.py): every unknown extension and user at once."""
    token = admin_token(agent)
    await configure(agent, crm, token, user_extensions={"1": "101"})
    assert (await call(agent, "POST", rc("/register"), token))[0] == 200
    items = [{"extension": "101"}, {"extension": "102"}]
    assert (await call(agent, "PUT", f"/api/enterprises/{ENTERPRISE}/extensions", token, {"extensions": items}))[
        0
    ] == 200
    before = len(crm.requests_to("/edit"))
    for replace in (False, True):
        changes = {"1": "555", "2": "102", "3": "556", "42": "101"}
        status, body = await call(
            agent, "PUT", rc("/extensions"), token, {"user_extensions": changes, "replace": replace}
        )
        assert status == 400, body
        assert body["unknown_extensions"] == ["555", "556"] and body["unknown_users"] == ["42"]
        assert body["errors"] == {
            "user_extensions.1": "555 is not one of the enterprise's extensions (Extensions page).",
            "user_extensions.3": "556 is not one of the enterprise's extensions (Extensions page).",
            "user_extensions.42": "There is no user 42 in the CRM.",
        }
        assert (body["field"], body["error"]) == ("user_extensions.1", body["errors"]["user_extensions.1"])
    status, body = await call(agent, "PUT", rc("/extensions"), token, {"user_extensions": {"2": "101", "3": "101"}})
    assert status == 400 and body["errors"] == {"user_extensions.3": "Extension 101 is also chosen for User2 Test."}
    status, stored = await call(agent, "GET", f"/api/enterprises/{ENTERPRISE}/integrations/retailcrm", token)
    assert stored["user_extensions"] == {"1": "101"}  # nothing stored
    assert len(crm.requests_to("/edit")) == before  # nothing sent to RetailCRM
    status, body = await call(agent, "PUT", rc("/extensions"), token, {"user_extensions": {"2": "102"}})
    assert status == 200 and body["user_extensions"] == {"1": "101", "2": "102"} and body["sync"]["ok"], body


async def test_enterprise_extensions_list(agent: Agent) -> None:
    token = admin_token(agent)
    path = f"/api/enterprises/{ENTERPRISE}/extensions"
    assert (await call(agent, "GET", path, token))[0] == 404
    await call(agent, "PUT", f"/api/enterprises/{ENTERPRISE}", token, {"name": "x"})
    assert await call(agent, "GET", path, token) == (200, {"extensions": []})
    items = [
        {"extension": "102", "display_name": "Boris "},
        {"extension": "101", "display_name": "Anna"},
        {"extension": "1000"},
    ]
    status, body = await call(agent, "PUT", path, token, {"extensions": items})
    assert status == 200 and len(body["extensions"]) == 3
    assert (await call(agent, "GET", path, token))[1] == {
        "extensions": [
            {"extension": "101", "display_name": "Anna"},
            {"extension": "102", "display_name": "Boris"},
            {"extension": "1000", "display_name": ""},
        ]
    }
    for bad, field in (
        ({"extensions": [{"extension": "1 2"}]}, "extensions[0].extension"),
        ({"extensions": [{"extension": "1"}, {"extension": "1"}]}, "extensions[1].extension"),
        ({"extensions": "101"}, "extensions"),
        ({"list": []}, "list"),
    ):
        status, answer = await call(agent, "PUT", path, token, bad)
        assert (status, answer["field"]) == (400, field)
    assert len((await call(agent, "GET", path, token))[1]["extensions"]) == 3
    other = TokenSigner(load_or_create_secret(agent.config.agent.state_dir)).issue("200", 1)
    assert (await call(agent, "GET", path, other))[0] == 403
