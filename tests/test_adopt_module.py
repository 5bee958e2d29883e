"""«Save and register» on an account that already has a telephony module (the replaced service's
`vochi-telephony`, or the code an old record names): that module is updated in place with the agent's URLs and
clientId instead of a second one being created, and its additionalCodes are imported on first sight (local data
wins, conflicts listed)."""

from __future__ import annotations

from collections.abc import Callable

from agent.config.sections import Config
from tests.admin_client import base, client, csrf
from tests.fakes.retailcrm import FakeRetailCrm
from tests.old_platform import OLD_MODULE_CODE, old_module
from tests.rc_agent import CLIENT_ID, ENTERPRISE, KEY, admin_token, call, configure, rc, started

LOCAL = {"7": "150", "8": "151"}
# 7: the same; 9: new, imported; 8: another code (ours wins); 10: a code user 8 holds here (ours wins)
THEIRS = {"7": "150", "9": "152", "8": "160", "10": "151"}


def _codes(module: dict[str, object]) -> dict[str, str]:
    telephony = module["integrations"]["telephony"]  # type: ignore[index]
    return {str(c["userId"]): c["code"] for c in telephony["additionalCodes"]}


async def test_the_old_module_is_updated_in_place_and_its_codes_imported(
    db_dsn: str, make_config: Callable[..., Config]
) -> None:
    async with FakeRetailCrm(api_key=KEY) as crm, started(make_config, db_dsn) as agent:
        crm.users = [{"id": i, "active": True} for i in (7, 8, 9, 10)]
        crm.modules[OLD_MODULE_CODE] = old_module(ENTERPRISE, THEIRS)
        token = admin_token(agent)
        await configure(agent, crm, token, user_extensions=LOCAL)
        status, body = await call(agent, "POST", rc("/register"), token)
        assert status == 200, body

        assert list(crm.modules) == [OLD_MODULE_CODE]  # no second module
        module = crm.modules[OLD_MODULE_CODE]
        public = agent.config.agent.public_url
        assert module["baseUrl"] == public and module["clientId"] == CLIENT_ID
        assert module["accountUrl"].startswith(f"{public}/admin/retailcrm?enterprise_number={ENTERPRISE}&token=")
        assert module["integrations"]["telephony"]["makeCallUrl"].startswith(public)
        assert _codes(module) == {"7": "150", "8": "151", "9": "152"}
        assert body["created"] is False and body["code"] == OLD_MODULE_CODE
        assert body["adopted"] == {
            "code": OLD_MODULE_CODE,
            "imported": {"9": "152"},
            "conflicts": [
                {"user_id": "8", "local": "151", "crm": "160", "held_by": None},
                {"user_id": "10", "local": None, "crm": "151", "held_by": "8"},
            ],
        }
        status, stored = await call(agent, "GET", rc(""), token)
        assert stored["code"] == OLD_MODULE_CODE and stored["user_extensions"] == {"7": "150", "8": "151", "9": "152"}

        # later registrations edit the adopted module and look for no other
        crm.requests.clear()
        status, body = await call(agent, "POST", rc("/register"), token)
        assert status == 200 and body["adopted"] is None and list(crm.modules) == [OLD_MODULE_CODE]
        assert [r.path for r in crm.requests] == [f"/api/v5/integration-modules/{OLD_MODULE_CODE}/edit"]


async def test_the_code_an_old_record_names_is_adopted_first(db_dsn: str, make_config: Callable[..., Config]) -> None:
    async with FakeRetailCrm(api_key=KEY) as crm, started(make_config, db_dsn) as agent:
        crm.modules["vochi-asterisk"] = old_module(ENTERPRISE, {"16": "151"}, code="vochi-asterisk")
        crm.modules[OLD_MODULE_CODE] = old_module(ENTERPRISE, {})
        token = admin_token(agent)
        await configure(agent, crm, token, code="vochi-asterisk")
        status, body = await call(agent, "POST", rc("/register"), token)
        assert status == 200, body
        assert body["adopted"]["code"] == "vochi-asterisk" and body["adopted"]["imported"] == {"16": "151"}
        assert crm.modules[OLD_MODULE_CODE] == old_module(ENTERPRISE, {})  # the other one untouched


async def test_no_module_in_the_account_registers_our_own(db_dsn: str, make_config: Callable[..., Config]) -> None:
    async with FakeRetailCrm(api_key=KEY) as crm, started(make_config, db_dsn) as agent:
        token = admin_token(agent)
        await configure(agent, crm, token, user_extensions=LOCAL)
        status, body = await call(agent, "POST", rc("/register"), token)
        assert status == 200 and body["created"] is True and body["adopted"] is None
        assert list(crm.modules) == ["pbx-agent"] and _codes(crm.modules["pbx-agent"]) == LOCAL


async def test_the_page_says_what_was_adopted_and_lists_the_conflicts(
    db_dsn: str, make_config: Callable[..., Config]
) -> None:
    async with FakeRetailCrm(api_key=KEY) as crm, started(make_config, db_dsn) as agent:
        crm.modules[OLD_MODULE_CODE] = old_module(ENTERPRISE, THEIRS)
        await configure(agent, crm, admin_token(agent), user_extensions=LOCAL)
        async with client(agent, ENTERPRISE) as http:
            url = f"{base(agent)}/admin/{ENTERPRISE}/retailcrm"
            token = await csrf(http, url)
            async with http.post(url, data={"csrf_token": token, "action": "register"}) as resp:
                html = await resp.text()
        assert resp.status == 200, html
        assert 'id="adopted"' in html and f"<code>{OLD_MODULE_CODE}</code>" in html
        assert (
            "user 8 has 160 in RetailCRM; here: 151" in html
            and "user 10 has 151 in RetailCRM; here 151 is user 8&#39;s" in html
        )
