"""amoCRM through the running agent: the OAuth dance, the config routes, webhooks, and recorded calls
reaching amoCRM through the outbox (FakeAmi replaying real AMI bytes)."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.store.database import Pool
from agent.store.secretbox import load_or_create_secret
from agent.tracking.event import CallEvent
from agent.web.tokens import TokenSigner
from connectors.amocrm.connector import AmoCrmConnector
from tests import recordings
from tests.amocrm_setup import ENTERPRISE, configure_amocrm, connect_tokens
from tests.crm_setup import drained, running
from tests.fakes.ami import FakeAmi
from tests.fakes.amocrm import FakeAmoCrm
from tests.test_ami_link import pbx_for

PUBLIC = "https://pbx.example.com"
CALLER = "+375291234567"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmoCrm]:
    async with FakeAmoCrm() as amo:
        amo.redirect_uri = PUBLIC + "/amocrm/oauth/callback"
        yield amo


_amis: list[FakeAmi] = []


@pytest.fixture(autouse=True)
async def _stop_amis() -> AsyncIterator[None]:
    yield
    while _amis:
        await _amis.pop().stop()


async def ami_for(name: str | bytes) -> FakeAmi:
    """The recording, held back (pause_at=0) until the test has connected amoCRM's tokens and unpauses:
    a call delivered before the tokens exist waits out the 5-minute token retry."""
    if isinstance(name, bytes):
        ami = FakeAmi(name, speed=math.inf, pause_at=0)
    else:
        d = recordings.recordings_dir()
        ami = FakeAmi(d / f"{name}.ami", d / f"{name}.timing", speed=math.inf, pause_at=0)
    await ami.start()
    _amis.append(ami)
    return ami


def config(make_config: Callable[..., Config], db_dsn: str, ami: FakeAmi | None = None) -> Config:
    base = make_config(db_dsn, public_url=PUBLIC)
    return replace(base, pbx=(pbx_for(ami),) if ami is not None else ())


def amo_of(agent: Agent) -> AmoCrmConnector:
    connector = agent.parts.integrations.connectors["amocrm"]
    assert isinstance(connector, AmoCrmConnector)
    return connector


def local(agent: Agent, url: str) -> str:
    """A URL under public_url as this test reaches it (the agent listens on a random port)."""
    parts = urlsplit(url)
    return f"http://127.0.0.1:{agent.parts.http_port}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def api_headers(cfg: Config, enterprise: str | None = None) -> dict[str, str]:
    token = TokenSigner(load_or_create_secret(cfg.agent.state_dir)).issue(enterprise, 1)
    return {"Authorization": f"Bearer {token}"}


# -- OAuth ---------------------------------------------------------------------------------------


async def test_oauth_connect_redirect_callback_and_state_rules(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    cfg = config(make_config, db_dsn)
    await configure_amocrm(pool, cfg.agent.state_dir, fake)
    api_token = api_headers(cfg, ENTERPRISE)["Authorization"].split()[1]
    async with running(cfg) as agent, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{agent.parts.http_port}"
        connect_url = f"{base}/api/enterprises/{ENTERPRISE}/integrations/amocrm/connect-url"
        async with http.get(connect_url, headers={"Authorization": f"Bearer {api_token}"}) as resp:
            assert resp.status == 200
            consent = (await resp.json())["url"]
        assert consent.startswith(fake.url + "/oauth?")
        async with http.get(consent, allow_redirects=False) as resp:  # the admin clicks "Allow"
            assert resp.status == 302
            callback = resp.headers["Location"]
        assert callback.startswith(PUBLIC + "/amocrm/oauth/callback?")
        query = parse_qs(urlsplit(callback).query)
        assert query["referer"] == [fake.netloc] and "state" in query
        async with http.get(local(agent, callback)) as resp:
            assert resp.status == 200, await resp.text()
        row = await pool.fetchrow("SELECT * FROM amocrm_tokens")
        assert row is not None
        assert row["status"] == "connected" and row["kind"] == "oauth" and row["host"] == fake.url
        assert row["access_token"].startswith("enc:v1:") and row["account"]["id"] == fake.account_id
        generation = row["generation"]

        # the same callback again (a replayed state): refused, nothing stored
        async with http.get(local(agent, callback)) as resp:
            assert resp.status == 400 and "already used" in await resp.text()
        # a forged state
        forged = callback.replace(query["state"][0], query["state"][0][:-4] + "AAAA")
        async with http.get(local(agent, forged)) as resp:
            assert resp.status == 400
        # a widget install without state
        async with http.get(
            f"{base}/amocrm/oauth/callback", params={"code": "x", "referer": fake.netloc, "from_widget": "1"}
        ) as resp:
            assert resp.status == 400
        # a valid fresh state but a referer that is not the account: our secret is not sent there
        async with http.get(connect_url, headers={"Authorization": f"Bearer {api_token}"}) as resp:
            state = parse_qs(urlsplit((await resp.json())["url"]).query)["state"][0]
        token_calls = len(fake.requests_to("/oauth2/access_token"))
        async with http.get(
            f"{base}/amocrm/oauth/callback", params={"code": "x", "referer": "evil.example.com", "state": state}
        ) as resp:
            assert resp.status == 400
        assert len(fake.requests_to("/oauth2/access_token")) == token_calls
        assert await pool.fetchval("SELECT generation FROM amocrm_tokens") == generation
        # connect without a valid API token
        async with http.get(connect_url) as resp:
            assert resp.status == 401
        # the old route that took the token in its URL: gone, and it reads no token
        async with http.get(
            f"{base}/amocrm/{ENTERPRISE}/connect", params={"token": api_token}, allow_redirects=False
        ) as resp:
            assert resp.status == 410 and f"/api/enterprises/{ENTERPRISE}/integrations/amocrm/connect-url" in (
                await resp.text()
            )
        async with http.get(f"{base}/amocrm/{ENTERPRISE}/connect", headers={"Accept-Language": "ru"}) as resp:
            assert resp.status == 410 and "Эта ссылка больше не работает" in await resp.text()

        # the status route shows the account, never a token
        async with http.get(
            f"{base}/api/enterprises/{ENTERPRISE}/integrations/amocrm/status", headers=api_headers(cfg)
        ) as resp:
            status = await resp.json()
        assert status["status"] == "connected" and status["account"]["name"] == "Test account"
        assert status["redirect_uri"] == PUBLIC + "/amocrm/oauth/callback"
        assert "acc." not in str(status) and "ref." not in str(status)


async def test_pasted_code_long_lived_token_pipelines_and_disconnect(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    cfg = config(make_config, db_dsn)
    await configure_amocrm(pool, cfg.agent.state_dir, fake)
    headers = api_headers(cfg, ENTERPRISE)
    async with running(cfg) as agent, aiohttp.ClientSession(headers=headers) as http:
        base = f"http://127.0.0.1:{agent.parts.http_port}/api/enterprises/{ENTERPRISE}/integrations/amocrm"
        async with http.post(f"{base}/code", json={"code": "not-a-code"}) as resp:
            answer = await resp.json()
            assert resp.status == 400 and answer["field"] == "code", answer
        assert await pool.fetchval("SELECT count(*) FROM amocrm_tokens") == 0
        async with http.post(f"{base}/code", json={"code": fake.issue_code()}) as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "connected"
        async with http.get(f"{base}/pipelines") as resp:
            (pipeline,) = (await resp.json())["pipelines"]
        assert pipeline["id"] == 3001 and {"id": 142, "name": "Won"} in pipeline["statuses"]
        async with http.delete(f"{base}/tokens") as resp:
            assert (await resp.json())["deleted"] is True
        async with http.get(f"{base}/status") as resp:
            assert (await resp.json())["status"] == "not_connected"

        async with http.post(f"{base}/token", json={"token": "garbage"}) as resp:
            assert resp.status == 400
        assert await pool.fetchval("SELECT count(*) FROM amocrm_tokens") == 0
        token = fake.issue_long_lived()
        async with http.post(f"{base}/token", json={"token": token}) as resp:
            body = await resp.json()
        assert body["status"] == "connected" and body["kind"] == "long_lived" and body["expires_at"]
        fake.revoke_access(token)
        async with http.get(f"{base}/status") as resp:
            body = await resp.json()
        assert body["status"] == "expired" and "long-lived" in body["reason"]
        assert fake.refreshes == 0

        async with http.put(f"{base}", json={"host": "https://www.amocrm.ru"}) as resp:
            answer = await resp.json()
            assert resp.status == 400 and answer["field"] == "host", answer


# -- webhooks ------------------------------------------------------------------------------------


async def test_webhook_responsible_change_fires_the_hook_with_phones(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    cfg = config(make_config, db_dsn)
    settings = await configure_amocrm(pool, cfg.agent.state_dir, fake)
    contact = fake.add_contact("+375 29 765-43-21", responsible_user_id=8)
    lead_id = fake.add_lead(contact, name="deal")
    async with running(cfg) as agent:
        await connect_tokens(amo_of(agent), fake)
        seen: list[tuple[str, list[str]]] = []
        amo_of(agent).on_responsible_change(lambda e, phones: seen.append((e, phones)))
        url = f"http://127.0.0.1:{agent.parts.http_port}/amocrm/webhook/{ENTERPRISE}/{settings.webhook_secret}"
        status, _ = await fake.send_webhook(
            url,
            {
                "contacts[update][0][id]": "555",
                "contacts[update][0][responsible_user_id]": "9",
                "contacts[update][0][old_responsible_user_id]": "7",
                "contacts[update][0][custom_fields][0][code]": "PHONE",
                "contacts[update][0][custom_fields][0][values][0][value]": CALLER,
                "account[subdomain]": "test",
                "account[id]": str(fake.account_id),
            },
        )
        assert status == 200
        assert seen == [(ENTERPRISE, [CALLER])]
        # a lead changed hands: its contacts' phones come from amoCRM
        status, _ = await fake.send_webhook(
            url, {"leads[responsible][0][id]": str(lead_id), "leads[responsible][0][responsible_user_id]": "9"}
        )
        assert status == 200 and seen[-1] == (ENTERPRISE, ["+375 29 765-43-21"])
        # an update that did not change the responsible user is not a change
        await fake.send_webhook(
            url,
            {
                "contacts[update][0][id]": "555",
                "contacts[update][0][responsible_user_id]": "9",
                "contacts[update][0][old_responsible_user_id]": "9",
            },
        )
        assert len(seen) == 2
        # the wrong secret: 404, no hook
        status, _ = await fake.send_webhook(
            url[:-3] + "xyz", {"contacts[update][0][id]": "1", "contacts[update][0][responsible_user_id]": "1"}
        )
        assert status == 404 and len(seen) == 2
        logs = await pool.fetch("SELECT status FROM integration_logs WHERE event_type = 'webhook'")
        assert len(logs) == 3 and settings.webhook_secret not in str(
            await pool.fetch("SELECT request_data FROM integration_logs")
        )


# -- calls through the outbox ------------------------------------------------------------------------


async def run_recording(fake: FakeAmoCrm, pool: Pool, cfg: Config, ami: FakeAmi, at_least: int = 1) -> dict[str, int]:
    async with running(cfg) as agent:
        await connect_tokens(amo_of(agent), fake)
        ami.unpause()
        await ami.wait_finished(within=10)
        return await drained(pool, at_least=at_least)


@pytest.mark.parametrize("policy", ["unsorted", "contact_and_lead", "none"])
async def test_unknown_caller_is_recorded_per_policy(
    policy: str, fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    ami = await ami_for("a_incoming_answered")
    cfg = config(make_config, db_dsn, ami)
    await configure_amocrm(
        pool,
        cfg.agent.state_dir,
        fake,
        unknown_caller=policy,
        pipeline_id=3001,
        status_id=40002 if policy == "contact_and_lead" else None,
        lead_tags=["pbx"],
    )
    counts = await run_recording(fake, pool, cfg, ami, at_least=3)
    # the call, the pop-up for 150's manager, and the answered call's task_done (no task to complete)
    assert counts == {"done": 3}
    call_id = await pool.fetchval("SELECT call_id FROM calls")
    steps = await pool.fetchval("SELECT steps FROM amocrm_call_steps")
    assert steps["recorded"]["via"] == policy
    if policy == "unsorted":
        (item,) = fake.unsorted
        assert item["metadata"]["uniq"] == call_id and item["metadata"]["from"] == CALLER
        assert item["pipeline_id"] == 3001 and fake.calls[0]["via"] == "unsorted"
    elif policy == "contact_and_lead":
        (lead,) = fake.leads.values()
        assert lead["status_id"] == 40002 and lead["_embedded"]["tags"] == [{"name": "pbx"}]
        (call,) = fake.calls
        assert call["uniq"] == call_id and call["call_status"] == 4 and call["responsible_user_id"] == 7
        assert not fake.dropped_calls
    else:
        assert not fake.calls and not fake.unsorted and not fake.leads
    log = await pool.fetchrow("SELECT status, request_data FROM integration_logs WHERE delivery_id IS NOT NULL")
    assert log is not None
    assert log["status"] == "success" and log["request_data"]["exchanges"]


async def test_known_caller_call_is_logged_with_the_answering_manager(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    fake.add_contact("375 (29) 123-45-67", responsible_user_id=8)  # another spelling of +375291234567
    ami = await ami_for("p_o_recorded_call")
    cfg = config(make_config, db_dsn, ami)
    await configure_amocrm(pool, cfg.agent.state_dir, fake)
    await run_recording(fake, pool, cfg, ami)
    (call,) = fake.calls
    assert call["direction"] == "inbound" and isinstance(call["duration"], int) and call["source"] == "pbx-agent"
    assert call["responsible_user_id"] == 7 and call["created_by"] == 7  # 150 answered
    assert call["uniq"] == await pool.fetchval("SELECT call_id FROM calls")
    assert not fake.tasks
    (popup,) = fake.popups  # 150 rang: its manager saw the call come in
    assert popup == {"type": "phone_call", "phone_number": "+375291234567", "users": [7]}


async def test_call_forwarded_to_the_managers_mobile_is_his_answered_call(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    """p_t: 150's phone forwards (302) to his mobile, which answers: an answered call for 150 on the
    customer's card; the mobile is never looked up, nor made a contact or a lead."""
    fake.add_contact("+375291234567", responsible_user_id=8)
    ami = await ami_for("p_t_forward_no_answer")
    cfg = config(make_config, db_dsn, ami)
    await configure_amocrm(pool, cfg.agent.state_dir, fake, unknown_caller="contact_and_lead", pipeline_id=3001)
    await run_recording(fake, pool, cfg, ami)
    (call,) = fake.calls
    assert (call["direction"], call["call_status"], call["responsible_user_id"]) == ("inbound", 4, 7)
    assert call["phone"] == "+375291234567"  # (durations: the fake AMI sends the whole stream at once)
    assert call["call_result"] == "Answered (150 on +375296660150)"
    assert not fake.tasks and not fake.leads and not fake.unsorted and len(fake.contacts) == 1
    # the mobile is named only in the call's result text: never searched for, never sent as a phone
    looked_up = [r for r in fake.requests if "6660150" in json.dumps([r.query, r.body])]
    assert [r.path for r in looked_up] == ["/api/v4/calls"]


async def test_missed_recorded_call_makes_one_task_and_a_repeat_adds_none(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    fake.add_contact(CALLER, responsible_user_id=9)
    ami = await ami_for("p_b_incoming_missed")
    cfg = config(make_config, db_dsn, ami)
    await configure_amocrm(pool, cfg.agent.state_dir, fake, task_due_minutes=30)
    await run_recording(fake, pool, cfg, ami, at_least=2)  # the call and 150's pop-up
    (task,) = fake.tasks.values()
    assert task["responsible_user_id"] == 9 and task["entity_type"] == "contacts" and task["task_type_id"] == 1
    assert CALLER in task["text"]
    (call,) = fake.calls
    assert call["call_status"] == 6
    # the same caller misses again while the task is open: no second task; once done, a new one
    async with running(cfg) as agent:
        agent.parts.on_call_event(missed("second", ("150",)))
        await drained(pool, at_least=3)
        assert len(fake.tasks) == 1 and len(fake.calls) == 2
        fake.complete_task(task["id"])
        agent.parts.on_call_event(missed("third", ("150",)))
        await drained(pool, at_least=4)
    assert len(fake.tasks) == 2


async def test_the_next_answered_call_with_the_customer_completes_the_task_once(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    fake.add_contact(CALLER, responsible_user_id=9)
    ami = await ami_for("p_b_incoming_missed")
    cfg = config(make_config, db_dsn, ami)
    await configure_amocrm(pool, cfg.agent.state_dir, fake)
    await run_recording(fake, pool, cfg, ami, at_least=2)
    (task,) = fake.tasks.values()
    assert task["is_completed"] is False
    async with running(cfg) as agent:
        # a colleague calls the customer back: the task is done, with a result text, through the outbox
        agent.parts.on_call_event(replace(missed("back", ("151",)), direction="out", answered_by="151"))
        await drained(pool, at_least=4)
        assert task["is_completed"] is True and "151" in task["result"]["text"]
        # the customer calls again and is answered: nothing more to complete
        agent.parts.on_call_event(replace(missed("again", ("150",)), answered_by="150", result="answered"))
        await drained(pool, at_least=6)
    patched = [r for r in fake.requests if r.method == "PATCH" and r.path.startswith("/api/v4/tasks/")]
    assert len(patched) == 1
    done = await pool.fetch("SELECT status FROM deliveries WHERE kind = 'task_done'")
    assert [r["status"] for r in done] == ["done", "done"]


def missed(call_id: str, rang: tuple[str, ...], phone: str = CALLER) -> CallEvent:
    now = datetime.now(UTC)
    return CallEvent(
        event="ended",
        call_id=call_id,
        enterprise=ENTERPRISE,
        direction="in",
        phone=phone,
        did="375173880000",
        extension=rang[0] if len(rang) == 1 else None,  # the owner, as agent.tracking.end.owner gives it
        at=now,
        extensions=rang,
        answered_by=None,
        result="no_answer",
        ring_seconds=12.0,
        talk_seconds=0.0,
        started_at=now - timedelta(seconds=12),
        ended_at=now,
    )


async def test_a_queue_that_rang_three_phones_and_was_missed_makes_one_task(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    cfg = config(make_config, db_dsn)
    await configure_amocrm(pool, cfg.agent.state_dir, fake, unknown_caller="unsorted")
    async with running(cfg) as agent:
        await connect_tokens(amo_of(agent), fake)
        for ext in ("150", "151", "152"):
            agent.parts.on_call_event(replace(missed("q1", ()), event="ringing", extension=ext, extensions=()))
        agent.parts.on_call_event(missed("q1", ("150", "151", "152")))
        agent.parts.on_call_event(missed("q1", ("150", "151", "152")))  # a replay of the same end: no new row
        await drained(pool, at_least=1)
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE kind = 'call'") == 1
    # each ringing phone's manager got the live pop-up (crm-api.md §B6), once
    assert sorted(p["users"][0] for p in fake.popups) == [7, 8, 9]
    assert {p["phone_number"] for p in fake.popups} == {CALLER}
    (task,) = fake.tasks.values()
    # unknown caller: the task hangs on the unsorted lead; a queue nobody answered is none of its members' (not
    # the last phone that rang, 152 -> user 9): no owner is sent, and amoCRM gives it to the integration's user
    assert task["entity_type"] == "leads" and task["responsible_user_id"] not in (7, 8, 9)
    assert len(fake.unsorted) == 1


async def test_problem_json_rejection_fails_visibly(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    fake.add_contact(CALLER)
    ami = await ami_for("p_a_incoming_answered")
    cfg = config(make_config, db_dsn, ami)
    await configure_amocrm(pool, cfg.agent.state_dir, fake)
    body: dict[str, Any] = {
        "title": "Bad Request",
        "type": "https://httpstatus.es/400",
        "status": 400,
        "detail": "Request validation failed",
        "validation-errors": [
            {
                "request_id": "0",
                "errors": [
                    {
                        "code": "NotSupportedChoice",
                        "path": "call_status",
                        "detail": "The value you selected is not a valid choice.",
                    }
                ],
            }
        ],
    }
    async with running(cfg) as agent:
        await connect_tokens(amo_of(agent), fake)
        fake.fail_next(1, status=400, body=body, path="/api/v4/calls")  # the first one, after the contact search
        ami.unpause()
        await ami.wait_finished(within=10)
        counts = await drained(pool, at_least=3)
    assert counts == {"failed": 1, "done": 2}  # the call was rejected; 150's pop-up and the task_done went out
    error = await pool.fetchval("SELECT last_error FROM deliveries WHERE kind = 'call'")
    assert "Request validation failed" in error and "call_status" in error and "not a valid choice" in error


# -- the old integration's record ------------------------------------------------------------------


async def test_the_old_integrations_tokens_keep_the_account_connected(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    """Seeds 002/004: the settings under the old names (domain, lead_pipeline_id, `enabled` a string, sync flags)
    and the OAuth pair in the record, in clear. The agent adopts the pair (encrypted) at start: connected, the
    account answers, a refresh works with the old refresh token, a settings save keeps the connection and the
    old keys; a disconnect removes the tokens from the record too, so they are not adopted again."""
    cfg = config(make_config, db_dsn)
    pair = fake.issue_tokens()
    old = {
        "domain": fake.url,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "redirect_uri": "https://bot.vochi.by/admin/crm/callback",
        "access_token": pair["access_token"],
        "refresh_token": pair["refresh_token"],
        "expires_at": int(datetime.now(UTC).timestamp()) + 86400,
        "sync_contacts": True,
        "auto_create_lead": True,
        "lead_pipeline_id": 3001,
        "lead_status_id": "142",
        "enabled": "true",
    }
    await pool.execute(
        "INSERT INTO enterprises (number, name, integrations_config) VALUES ($1, 'Shop',"
        " jsonb_build_object('amocrm', $2::jsonb))",
        ENTERPRISE,
        old,
    )
    headers = api_headers(cfg, ENTERPRISE)
    async with running(cfg) as agent, aiohttp.ClientSession(headers=headers) as http:
        row = await pool.fetchrow("SELECT * FROM amocrm_tokens")
        assert row is not None
        assert row["kind"] == "oauth" and row["access_token"].startswith("enc:v1:") and row["host"] == fake.url
        enabled = await agent.parts.integrations.enabled(ENTERPRISE)
        settings = enabled["amocrm"].settings
        assert settings.pipeline_id == 3001 and settings.status_id == 142 and settings.enabled
        base = f"http://127.0.0.1:{agent.parts.http_port}/api/enterprises/{ENTERPRISE}/integrations/amocrm"
        async with http.get(f"{base}/status") as resp:
            body = await resp.json()
        assert body["status"] == "connected" and body["account"]["id"] == fake.account_id, body
        fake.expire_access_tokens()  # the next call refreshes with the old integration's refresh token
        async with http.get(f"{base}/pipelines") as resp:
            assert resp.status == 200
        assert fake.refreshes == 1
        async with http.put(base, json={**settings.to_json(), "unknown_caller": "none"}) as resp:
            assert resp.status == 200, await resp.text()
        stored = await pool.fetchval("SELECT integrations_config -> 'amocrm' FROM enterprises")
        assert stored["sync_contacts"] is True and stored["redirect_uri"] == old["redirect_uri"]
        async with http.get(f"{base}/status") as resp:
            assert (await resp.json())["status"] == "connected"
        async with http.delete(f"{base}/tokens") as resp:
            assert (await resp.json())["deleted"] is True
        async with http.get(f"{base}/status") as resp:
            assert (await resp.json())["status"] == "not_connected"
    assert await pool.fetchval("SELECT count(*) FROM amocrm_tokens") == 0
    assert "refresh_token" not in await pool.fetchval("SELECT integrations_config -> 'amocrm' FROM enterprises")
