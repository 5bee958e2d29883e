"""Issue 17's «done when», end to end: a database built like the old platform's (tests/old_platform.py, records in
every format the documents show) is migrated and served by the agent; every enterprise's RetailCRM and amoCRM
settings are active without anyone re-entering them; the old «Сохранить и зарегистрировать» (through its old URL)
adopts the account's `vochi-telephony` module and imports its additionalCodes; a replayed call reaches the fake
RetailCRM with the imported manager codes; the old URLs answer; the platform's columns and rows are unchanged.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import asyncpg

from agent.config.sections import Config
from agent.store import migrate as migrations
from agent.store.database import Pool
from agent.store.secretbox import SecretBox, load_or_create_secret
from connectors.registry import secret_fields
from tests import old_platform, recordings
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.rc_agent import admin_token, call, pbx_for, started

# the account's module as the old service left it: 19 as here; 25 only there (imported); 18 another code (ours wins)
THEIRS = {"19": "150", "25": "152", "18": "155"}
RECORDING = "i_queue_second_member"  # a queue call: 151 rings, then 152 answers


async def _snapshot(dsn: str, columns: dict[str, Any] | None = None) -> tuple[dict[str, Any], ...]:
    """(the old tables' columns, their rows — enterprises without integrations_config —, each record as text)."""
    conn = await asyncpg.connect(dsn)
    try:
        columns = await old_platform.old_columns(conn, only=columns)
        plain = {**columns, "enterprises": [c for c in columns["enterprises"] if c[0] != "integrations_config"]}
        rows = await old_platform.dump(conn, plain)
        found = await conn.fetch("SELECT number, integrations_config::text AS c FROM enterprises")
        return columns, rows, {r["number"]: r["c"] for r in found}
    finally:
        await conn.close()


async def test_the_old_platform_is_taken_over_in_one_step(old_dsn: str, make_config: Callable[..., Config]) -> None:
    directory = recordings.recordings_dir()
    async with FakeRetailCrm(api_key=old_platform.RC_KEY) as crm:
        crm.users = [{"id": i, "active": True} for i in (18, 19, 22, 25)]
        crm.modules[old_platform.OLD_MODULE_CODE] = old_platform.old_module("0367", THEIRS)
        conn = await asyncpg.connect(old_dsn)
        try:  # the old record names the account: here, the fake
            await conn.execute(
                "UPDATE enterprises SET integrations_config ="
                " jsonb_set(integrations_config, '{retailcrm,domain}', to_jsonb($1::text)) WHERE number = '0367'",
                crm.url,
            )
        finally:
            await conn.close()
        columns, rows, configs = await _snapshot(old_dsn)

        # the one command
        conn = await asyncpg.connect(old_dsn)
        try:
            assert await migrations.apply(conn) == [m.version for m in migrations.available()]
        finally:
            await conn.close()

        async with started(make_config, old_dsn) as agent:
            active = {n: await agent.parts.integrations.enabled(n) for n in old_platform.RECORDS}
            assert set(active["0367"]) == {"retailcrm", "amocrm"} and set(active["0201"]) == {"retailcrm"}
            token = admin_token(agent)
            # the old «Сохранить и зарегистрировать», at its old URL, with the old page's body
            body = {"domain": crm.url, "api_key": old_platform.RC_KEY, "enabled": True}
            status, answer = await call(agent, "POST", "/retailcrm-admin/api/register/0367", token, body)
            assert status == 200 and answer["success"] is True, answer
            assert answer["adopted"]["code"] == old_platform.OLD_MODULE_CODE
            assert answer["adopted"]["imported"] == {"25": "152"}
            assert [c["user_id"] for c in answer["adopted"]["conflicts"]] == ["18"]
            assert list(crm.modules) == [old_platform.OLD_MODULE_CODE]  # updated in place, no second module
            module = crm.modules[old_platform.OLD_MODULE_CODE]
            assert module["baseUrl"] == agent.config.agent.public_url and module["clientId"] != "0367"

            # the old URLs answer from the agent's data
            status, body = await call(agent, "GET", "/retailcrm/api/internal-phones/0367", token)
            assert status == 200 and body["phones"][0] == {
                "phone_number": "150",
                "user_id": 1,
                "owner": "Джулай Джуновый",
            }
            status, body = await call(agent, "GET", "/api/user-extensions/0367", token)
            assert body["user_extensions"] == {"19": "150", "18": "151", "25": "152"}
            status, body = await call(agent, "GET", "/api/config/0201", token)
            assert status == 200 and body["config"]["domain"] == "https://example.retailcrm.ru"
            assert (await call(agent, "POST", "/api/events", None, {}))[0] == 410
            status, _ = await call(agent, "GET", "/retailcrm-admin/?enterprise_number=0367")
            assert status == 401  # redirected to the enterprise's page, which asks for a sign-in

        # a call on the enterprise's PBX, replayed
        ami = FakeAmi(directory / f"{RECORDING}.ami", directory / f"{RECORDING}.timing", speed=math.inf)
        await ami.start()
        try:
            async with started(make_config, old_dsn, pbx=(pbx_for(ami, enterprise="0367"),)) as agent:
                await ami.wait_finished(within=10)
                await _retailcrm_drained(agent.parts.pool)  # amoCRM's account is not reachable from here
                logs = await agent.parts.pool.fetch(
                    "SELECT event_type, response_data FROM integration_logs"
                    " WHERE enterprise_number = '0367' AND event_type IN ('call_event', 'calls_upload')"
                )
        finally:
            await ami.stop()
        assert crm.events and all(set(e["codes"]) <= {"151", "152"} for e in crm.events)
        assert "152" in {c for e in crm.events for c in e["codes"]}  # the imported code
        ((upload,),) = crm.uploads
        assert (upload["code"], upload["userId"]) == ("152", 25)  # manager 25 came from the module's additionalCodes
        assert logs and not [r for r in logs if "notExistCodes" in json.dumps(r["response_data"] or {})]

    # the platform's columns and rows: unchanged (only the adopted record was written, as adoption must)
    after_columns, after_rows, after_configs = await _snapshot(old_dsn, columns)
    assert after_columns == columns  # same names, types, defaults, nullability
    assert after_rows["users"] == rows["users"] and after_rows["user_internal_phones"] == rows["user_internal_phones"]
    assert after_rows["integration_logs"][: len(rows["integration_logs"])] == rows["integration_logs"]
    assert after_rows["enterprises"] == rows["enterprises"]
    assert {n: c for n, c in after_configs.items() if n != "0367"} == {n: c for n, c in configs.items() if n != "0367"}
    record = json.loads(after_configs["0367"])
    old_record = json.loads(configs["0367"])
    assert record["amocrm"] == old_record["amocrm"]
    rc = SecretBox(load_or_create_secret(make_config().agent.state_dir), secret_fields()).decrypted(
        "retailcrm", record["retailcrm"]
    )
    assert rc["api_key"] == old_platform.RC_KEY and rc["domain"] == crm.url and rc["enabled"] is True
    assert rc["last_sync"] == old_record["retailcrm"]["last_sync"] and rc["version"] == "1.0"
    assert rc["code"] == old_platform.OLD_MODULE_CODE


async def _retailcrm_drained(pool: Pool, within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while True:
            counts = await pool.fetchrow(
                "SELECT count(*) AS n, count(*) FILTER (WHERE status IN ('pending', 'in_progress')) AS busy"
                " FROM deliveries WHERE integration_type = 'retailcrm'"
            )
            assert counts is not None
            if counts["n"] >= 2 and counts["busy"] == 0:
                return
            await asyncio.sleep(0.05)
