"""The URLs RetailCRM calls on us, end to end: FakeRetailCrm -> the agent -> FakeAmi / PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from agent.app import Agent
from agent.config.sections import Config
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.rc_agent import CLIENT_ID, IDLE_AMI, KEY, admin_token, call, configure, pbx_for, rc, started
from tests.waiting import until


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(IDLE_AMI) as fake:
        yield fake


@pytest.fixture
async def crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=KEY) as fake:
        fake.add_users(3)
        yield fake


@pytest.fixture
async def agent(
    db_dsn: str, make_config: Callable[..., Config], ami: FakeAmi, crm: FakeRetailCrm, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Agent]:
    """Enterprise 100 on PBX `office` (FakeAmi), RetailCRM configured and its module registered."""
    caplog.set_level(logging.DEBUG)
    async with started(make_config, db_dsn, pbx=(pbx_for(ami, originate_context="crm-out"),)) as a:
        await ami.wait_logins(1)
        token = admin_token(a)
        await configure(a, crm, token, user_extensions={"1": "101"})
        status, body = await call(a, "POST", rc("/register"), token)
        assert status == 200, body
        yield a


def originates(ami: FakeAmi) -> list[dict[str, str]]:
    return [a for a in ami.actions if a.get("Action", "").lower() == "originate"]


async def callback(agent: Agent, path: str, params: dict[str, str], method: str = "GET") -> tuple[int, Any]:
    url = f"http://127.0.0.1:{agent.parts.http_port}{path}"
    async with aiohttp.ClientSession() as s:
        kw: dict[str, Any] = {"params": params} if method == "GET" else {"data": params}
        async with s.request(method, url, **kw) as resp:
            return resp.status, await resp.json()


async def logged(agent: Agent, event: str) -> list[dict[str, Any]]:
    rows = await agent.parts.pool.fetch(
        "SELECT status, error_message, http_status, request_data FROM integration_logs WHERE event_type = $1"
        " ORDER BY id",
        event,
    )
    return [dict(r) for r in rows]


# -- click-to-call -----------------------------------------------------------------------------------


async def test_click_to_call_reaches_the_pbx_as_one_originate(
    agent: Agent, ami: FakeAmi, crm: FakeRetailCrm, caplog: pytest.LogCaptureFixture
) -> None:
    status, text = await crm.click_to_call("101", "+7 (916) 123-45-67", user_id=1, external_phone="+74951112233")
    assert status == 200 and json.loads(text) == {"success": True}
    action = await ami.wait_action("Originate")
    assert action["Channel"] == "PJSIP/101"
    assert action["Context"] == "crm-out"
    assert action["Exten"] == "+79161234567"
    assert action["Priority"] == "1"
    assert action["CallerID"] == '"+79161234567" <+74951112233>'
    assert action["Async"] == "true"
    assert action.get("ActionID")

    status, text = await crm.click_to_call("101", "80291234567")  # no externalPhone: the extension's own ID
    assert status == 200
    await ami.wait_for(lambda: len(originates(ami)) == 2)
    assert originates(ami)[1]["CallerID"] == '"80291234567" <101>'

    # Async: the click was answered on "successfully queued"; the OriginateResponse that comes when
    # the call is answered is an event like any other, for the tracker
    aid = originates(ami)[0]["ActionID"]
    await ami.inject(
        f"Event: OriginateResponse\r\nActionID: {aid}\r\nResponse: Success\r\n"
        f"Channel: PJSIP/101-00000001\r\nReason: 4\r\n\r\n".encode()
    )
    answered = {"pbx": "office", "event": "OriginateResponse"}
    await until(
        lambda: (agent.metrics.registry.get_sample_value("pbx_agent_ami_events_total", answered) or 0) > 0, within=5
    )
    await asyncio.sleep(0.2)
    assert len(originates(ami)) == 2  # each click once, never more
    rows = await logged(agent, "make_call")
    assert [(r["status"], r["http_status"]) for r in rows] == [("success", 200), ("success", 200)]
    assert CLIENT_ID not in json.dumps(rows[0]["request_data"])  # the clientId is masked in the log
    assert rows[0]["request_data"]["params"]["code"] == "101"
    assert KEY not in caplog.text and CLIENT_ID not in caplog.text


async def test_click_to_call_as_post_form(agent: Agent, ami: FakeAmi) -> None:
    status, body = await callback(
        agent, "/retailcrm/make-call", {"clientId": CLIENT_ID, "code": "101", "phone": "+375291234567"}, "POST"
    )
    assert (status, body) == (200, {"success": True})
    assert (await ami.wait_action("Originate"))["Channel"] == "PJSIP/101"


async def test_click_to_call_rings_only_a_mapped_managers_extension(agent: Agent, ami: FakeAmi) -> None:
    status, body = await callback(
        agent, "/retailcrm/make-call", {"clientId": CLIENT_ID, "code": "600", "phone": "+375291234567"}
    )
    assert status == 403 and "extension 600 is not mapped" in body["errorMsg"]
    await asyncio.sleep(0.1)
    assert originates(ami) == []
    assert [(r["status"], r["http_status"]) for r in await logged(agent, "make_call")] == [("error", 403)]


async def test_unknown_client_id_is_403_and_changes_nothing(agent: Agent, ami: FakeAmi) -> None:
    for client_id in ("cid-" + "00" * 20, CLIENT_ID[:-1], ""):
        status, body = await callback(
            agent, "/retailcrm/make-call", {"clientId": client_id, "code": "101", "phone": "+375291234567"}
        )
        assert (status, body) == (403, {"success": False, "errorMsg": "unknown clientId"})
    for path in ("/retailcrm/user-status", "/retailcrm/activity"):
        assert (await callback(agent, path, {"clientId": "nope" * 5, "userId": "1", "status": "busy"}, "POST"))[
            0
        ] == 403
    await asyncio.sleep(0.1)
    assert originates(ami) == []
    assert await logged(agent, "make_call") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"code": "10 1", "phone": "+375291234567"}, "code"),
        ({"code": "101", "phone": "call me"}, "phone"),
        ({"phone": "+375291234567"}, "code"),
        ({"code": "101"}, "phone"),
        ({"code": "101", "phone": "+375291234567", "externalPhone": "x"}, "externalPhone"),
    ],
)
async def test_invalid_code_or_phone_is_400(agent: Agent, ami: FakeAmi, params: dict[str, str], field: str) -> None:
    status, body = await callback(agent, "/retailcrm/make-call", {"clientId": CLIENT_ID, **params})
    assert status == 400 and body["success"] is False and body["errorMsg"].startswith(field + ":")
    await asyncio.sleep(0.05)
    assert originates(ami) == []
    assert [r["status"] for r in await logged(agent, "make_call")] == ["error"]


async def test_link_down_says_so_and_nothing_is_sent_later(agent: Agent, ami: FakeAmi, crm: FakeRetailCrm) -> None:
    link = agent.pipelines["office"].link
    await ami.refuse_connections("unbind")
    await until(lambda: not link.connected.is_set(), within=5)
    status, text = await crm.click_to_call("101", "+375291234567")
    body = json.loads(text)
    assert status == 503 and body["success"] is False
    assert "not connected" in body["errorMsg"] and "not placed" in body["errorMsg"]
    await ami.accept_connections()
    await ami.wait_logins(2, within=10)
    await asyncio.sleep(0.3)
    assert originates(ami) == []
    rows = await logged(agent, "make_call")
    assert [(r["status"], r["http_status"]) for r in rows] == [("error", 503)]


async def test_pbx_refusal_is_reported(db_dsn: str, make_config: Callable[..., Config], crm: FakeRetailCrm) -> None:
    def refuse(fields: dict[str, str]) -> bytes:
        aid = fields.get("ActionID", "")
        return f"Response: Error\r\nActionID: {aid}\r\nMessage: Permission denied\r\n\r\n".encode()

    async with (
        FakeAmi(IDLE_AMI, responders={"Originate": refuse}) as ami,
        started(make_config, db_dsn, pbx=(pbx_for(ami),)) as agent,
    ):
        await ami.wait_logins(1)
        token = admin_token(agent)
        await configure(agent, crm, token, user_extensions={"1": "101"})
        assert (await call(agent, "POST", rc("/register"), token))[0] == 200
        status, text = await crm.click_to_call("101", "+375291234567")
        assert status == 502
        assert json.loads(text)["errorMsg"] == "the PBX refused the call: Permission denied"
        assert len(originates(ami)) == 1


async def test_enterprise_without_pbx(db_dsn: str, make_config: Callable[..., Config], crm: FakeRetailCrm) -> None:
    async with started(make_config, db_dsn) as agent:
        token = admin_token(agent)
        await configure(agent, crm, token, user_extensions={"1": "101"})
        assert (await call(agent, "POST", rc("/register"), token))[0] == 200
        status, text = await crm.click_to_call("101", "+375291234567")
        assert status == 503 and "no PBX is configured for enterprise 100" in json.loads(text)["errorMsg"]


async def test_disabled_integration_refuses_callbacks(agent: Agent, ami: FakeAmi, crm: FakeRetailCrm) -> None:
    token = admin_token(agent)
    await configure(agent, crm, token, enabled=False)
    status, _ = await crm.click_to_call("101", "+375291234567")
    assert status == 403
    assert originates(ami) == []


# -- user status and activity ------------------------------------------------------------------------


async def test_user_status_is_stored_and_listed(agent: Agent) -> None:
    token = admin_token(agent)
    for params, method in (
        ({"userId": "1", "code": "101", "status": "busy"}, "GET"),
        ({"userId": "2", "status": "dinner"}, "POST"),
        ({"userId": "1", "status": "free"}, "POST"),
    ):
        status, body = await callback(agent, "/retailcrm/user-status", {"clientId": CLIENT_ID, **params}, method)
        assert (status, body) == (200, {"success": True})
    status, bad = await callback(
        agent, "/retailcrm/user-status", {"clientId": CLIENT_ID, "userId": "1", "status": "asleep"}
    )
    assert status == 400 and bad["errorMsg"].startswith("status:")
    status, body = await call(agent, "GET", rc("/statuses"), token)
    assert status == 200
    assert [(s["user_id"], s["code"], s["status"]) for s in body["statuses"]] == [
        ("1", "101", "free"),
        ("2", None, "dinner"),
    ]
    assert body["module"]["registered"] is True
    # the managers list shows our stored status over RetailCRM's
    status, managers = await call(agent, "GET", rc("/managers"), token)
    assert {m["user_id"]: m["status"] for m in managers["managers"]} == {"1": "free", "2": "dinner", "3": "free"}


async def test_activity_callback_stores_the_flags(agent: Agent) -> None:
    token = admin_token(agent)
    activity = json.dumps({"active": False, "freeze": True})
    status, body = await callback(
        agent,
        "/retailcrm/activity",
        {"clientId": CLIENT_ID, "activity": activity, "systemUrl": "https://shop.retailcrm.ru"},
        "POST",
    )
    assert (status, body) == (200, {"success": True})
    module = (await call(agent, "GET", rc("/statuses"), token))[1]["module"]
    assert (module["active"], module["frozen"], module["system_url"]) == (False, True, "https://shop.retailcrm.ru")
    await callback(agent, "/retailcrm/activity", {"clientId": CLIENT_ID, "activity": '{"active": true}'}, "POST")
    module = (await call(agent, "GET", rc("/statuses"), token))[1]["module"]
    assert (module["active"], module["frozen"], module["system_url"]) == (True, False, "https://shop.retailcrm.ru")
    status, bad = await callback(agent, "/retailcrm/activity", {"clientId": CLIENT_ID, "activity": "yes"}, "POST")
    assert status == 400 and bad["errorMsg"] == "activity: not JSON"
    assert [r["status"] for r in await logged(agent, "activity")] == ["success", "success", "error"]
