"""The URLs of the replaced RetailCRM service (port 8019) answer from the agent's data, on the old platform's
database (tests/old_platform.py, migrated), behind the API's bearer token.

Shapes: the seeds (001, 003) name the paths and what they do but show no bodies. Where they are silent the shapes
are those of the old service's code (`{"success", "phones": [{"phone_number", "user_id", "owner"}], "total"}`,
`{"enterprise_number", "config"}`, ...), read tolerantly: a bare body as well as `{"config": ...}`, an extension as
a number or a string, "", null or "REMOVE" for none; `save-extensions` changes only the users it names.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
import jwt
import pytest

from admin.auth import LEGACY_SECRET_FILE
from agent.app import Agent
from agent.config.sections import Config
from tests import old_platform
from tests.admin_client import base
from tests.fakes.retailcrm import FakeRetailCrm
from tests.rc_agent import admin_token, call, started

PREFIXES = ("/api", "/retailcrm/api", "/retailcrm-admin/api")
OLD_SECRET = b"the old service's JWT_SECRET_KEY"


def old_token(number: str, secret: bytes = OLD_SECRET) -> str:
    """What the old service put in the module's accountUrl (seed 001: generate_retailcrm_access_token)."""
    now = int(time.time())
    claims = {"enterprise_number": number, "source": "retailcrm", "exp": now + 365 * 86400, "iat": now}
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_internal_phones_with_owners_from_users(
    old_migrated: str, make_config: Callable[..., Config], prefix: str
) -> None:
    async with started(make_config, old_migrated) as agent:
        token = admin_token(agent)
        status, body = await call(agent, "GET", f"{prefix}/internal-phones/0367", token)
        assert status == 200, body
        assert body == {
            "success": True,
            "phones": [
                {"phone_number": "150", "user_id": 1, "owner": "Джулай Джуновый"},
                {"phone_number": "151", "user_id": 2, "owner": "Анна Петрова"},
                {"phone_number": "152", "user_id": None, "owner": None},
            ],
            "total": 3,
        }
        assert (await call(agent, "GET", f"{prefix}/internal-phones/0367"))[0] == 401  # the API's authentication
        status, body = await call(agent, "GET", f"{prefix}/internal-phones/0999", token)
        assert status == 200 and body["phones"] == []


async def test_user_extensions_from_records_of_both_layouts(
    old_migrated: str, make_config: Callable[..., Config]
) -> None:
    async with started(make_config, old_migrated) as agent:
        token = admin_token(agent)
        status, body = await call(agent, "GET", "/api/user-extensions/0367", token)
        assert (status, body) == (200, {"success": True, "user_extensions": {"19": "150", "18": "151"}, "total": 2})
        status, body = await call(agent, "GET", "/retailcrm/api/user-extensions/0201", token)  # user_mappings
        assert body["user_extensions"] == {"16": "151", "18": "152"}
        status, body = await call(agent, "GET", "/api/user-extensions/0400", token)
        assert (status, body["user_extensions"]) == (200, {})
        status, body = await call(agent, "GET", "/api/user-extensions/7777", token)
        assert status == 404 and body["success"] is False


async def test_config_load_save_and_test(old_migrated: str, make_config: Callable[..., Config]) -> None:
    async with started(make_config, old_migrated) as agent, FakeRetailCrm(api_key=old_platform.RC_KEY) as crm:
        token = admin_token(agent)
        status, body = await call(agent, "GET", "/retailcrm-admin/api/config/0367", token)
        assert status == 200 and body["enterprise_number"] == "0367"
        config = body["config"]
        assert config["domain"] == "https://evgenybaevski.retailcrm.ru" and config["enabled"] is True
        assert config["last_sync"] == "2025-01-09T19:20:00Z" and config["version"] == "1.0"  # kept as written
        assert old_platform.RC_KEY not in str(body) and config["api_key"].startswith(old_platform.RC_KEY[:4])

        # the old page's body: {"config": {...}}; the key sent back masked keeps the stored one
        status, body = await call(
            agent, "PUT", "/api/config/0367", token, {"config": {"domain": crm.url, "api_key": config["api_key"]}}
        )
        assert status == 200, body
        assert body["config"]["domain"] == crm.url and body["config"]["version"] == "1.0"
        status, body = await call(agent, "POST", "/retailcrm/api/config/0367/test", token)
        assert status == 200 and body["success"] is True, body
        status, body = await call(agent, "PUT", "/api/config/0367", token, {"config": {"domain": "ftp://x"}})
        assert status == 400 and body["field"] == "domain" and body["success"] is False
        assert (await call(agent, "GET", "/api/config/0367", token))[1]["config"]["domain"] == crm.url


async def test_register_and_save_extensions(old_migrated: str, make_config: Callable[..., Config]) -> None:
    async with started(make_config, old_migrated) as agent, FakeRetailCrm(api_key=old_platform.RC_KEY) as crm:
        crm.users = [{"id": i, "firstName": f"U{i}", "active": True} for i in (16, 18, 19, 25)]
        token = admin_token(agent)
        # the old «Сохранить и зарегистрировать»: {domain, api_key, enabled}
        body_in = {"domain": crm.url, "api_key": old_platform.RC_KEY, "enabled": True}
        status, body = await call(agent, "POST", "/retailcrm-admin/api/register/0367", token, body_in)
        assert status == 200 and body["success"] is True, body
        status, body = await call(
            agent, "POST", "/api/save-extensions/0367", token, {"extensions": {"25": 152, "18": "REMOVE"}}
        )
        assert status == 200 and body["success"] is True, body
        assert body["saved_extensions"] == 2 and {"userId": "25", "code": "152"} in body["assignments"]
        (module,) = crm.modules.values()
        codes = {str(c["userId"]): c["code"] for c in module["integrations"]["telephony"]["additionalCodes"]}
        assert codes == {"19": "150", "25": "152"}  # 19 was not named: kept
        status, body = await call(agent, "POST", "/retailcrm/api/sync-extensions/0367", token)
        assert (status, body["synced_extensions"]) == (200, 2)
        # the old service stored any code it was sent, and its callers send every user's: an extension not listed
        # is still stored and reported here (the bearer API and the page refuse it)
        status, body = await call(agent, "POST", "/api/save-extensions/0367", token, {"extensions": {"16": "777"}})
        assert status == 200 and body["success"] is True and body["unknown_extensions"] == ["777"], body
        assert (await call(agent, "GET", "/api/user-extensions/0367", token))[1]["user_extensions"]["16"] == "777"
        status, body = await call(agent, "POST", "/api/save-extensions/0367", token, {"extensions": ["150"]})
        assert status == 400 and body["field"] == "extensions"


@pytest.mark.parametrize("path", ["/api/events", "/retailcrm/api/smart-redirect", "/api/smart-redirect/0367"])
async def test_never_built_paths_say_what_replaced_them(
    old_migrated: str, make_config: Callable[..., Config], path: str
) -> None:
    async with started(make_config, old_migrated) as agent:
        status, body = await call(agent, "POST", path, None, {"enterprise_number": "0367", "event_type": "dial"})
        assert status == 410
        assert ("AMI" if "events" in path else "FastAGI") in body["error"]


async def _open(agent: Agent, url: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": "en"}) as http,
        http.get(url) as resp,
    ):
        return resp.status, str(resp.url), await resp.text()


async def test_the_old_admin_entry_and_its_account_url(old_migrated: str, make_config: Callable[..., Config]) -> None:
    async with started(make_config, old_migrated) as agent, FakeRetailCrm(api_key=old_platform.RC_KEY) as crm:
        b = base(agent)
        old_link = f"{b}/retailcrm-admin/?enterprise_number=0367&token={old_token('0367')}"
        # without the old service's secret the agent cannot tell its links from forged ones
        assert (await _open(agent, old_link))[0] == 401
        (agent.config.agent.state_dir / LEGACY_SECRET_FILE).write_bytes(OLD_SECRET + b"\n")
        status, url, _ = await _open(agent, old_link)
        assert status == 200 and url.endswith("/admin/0367/overview")
        assert (await _open(agent, old_link.replace("0367", "0201", 1)))[0] == 401  # another enterprise's link
        forged = old_token("0367", b"not the secret, but as long as one should be")
        assert (await _open(agent, f"{b}/retailcrm-admin/?enterprise_number=0367&token={forged}"))[0] == 401
        # without a token: the enterprise's RetailCRM page, which asks for a sign-in
        status, url, _ = await _open(agent, f"{b}/retailcrm-admin/?enterprise_number=0367")
        assert status == 401 and url.endswith("/admin/0367/retailcrm")

        # registration by the agent rotates the link: the new one works, the old one no longer
        token = admin_token(agent)
        status, body = await call(agent, "PUT", "/api/config/0367", token, {"domain": crm.url})
        assert status == 200, body
        status, body = await call(agent, "POST", "/api/register/0367", token)
        assert status == 200, body
        (module,) = crm.modules.values()
        status, url, _ = await _open(agent, module["accountUrl"])
        assert status == 200 and url.endswith("/admin/0367/overview")
        new_token = dict(p.split("=", 1) for p in module["accountUrl"].split("?", 1)[1].split("&"))["token"]
        status, url, _ = await _open(agent, f"{b}/retailcrm-admin/?enterprise_number=0367&token={new_token}")
        assert status == 200 and url.endswith("/admin/0367/overview")
        assert (await _open(agent, old_link))[0] == 401
