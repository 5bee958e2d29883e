"""API tokens are recorded when issued, listed (ids, never the tokens) and revoked one by one, from the CLI or
the Instance admin's page; a revoked token gets 401 at once while the others keep working."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp

from agent.app import Agent
from agent.cli import main
from tests.admin_client import base, client, csrf
from tests.browser import seed


def cli_config(agent: Agent, db_dsn: str, tmp_path: Path) -> Path:
    config = tmp_path / "cli.toml"  # the running agent's state (its secret key) and database
    config.write_text(f'[agent]\nstate_dir = "{agent.config.agent.state_dir}"\n[database]\ndsn = "{db_dsn}"\n')
    return config


async def api_status(agent: Agent, token: str) -> int:
    url = f"{base(agent)}/api/deliveries?status=failed&enterprise=100"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http, http.get(url) as resp:
        return resp.status


async def run_cli(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(args))
    out = capsys.readouterr()
    return code, out.out.strip(), out.err.strip()


async def test_issue_list_and_revoke_from_the_cli(
    running_agent: Agent, db_dsn: str, tmp_path: Path, capsys: Any
) -> None:
    cfg = str(cli_config(running_agent, db_dsn, tmp_path))
    code, first, _ = await run_cli(capsys, "token", "-c", cfg, "--label", "monitoring")
    assert code == 0
    code, second, _ = await run_cli(capsys, "token", "-c", cfg, "--enterprise", "100", "--days", "7")
    assert code == 0
    assert await api_status(running_agent, first) == 200
    code, listed, _ = await run_cli(capsys, "token", "-c", cfg, "--list")
    lines = listed.splitlines()
    assert len(lines) == 2 and first not in listed and second not in listed  # ids only
    monitoring = next(line for line in lines if line.endswith("monitoring"))
    assert " valid " in monitoring and " all " in monitoring
    token_id = monitoring.split()[0]
    assert (await run_cli(capsys, "token", "-c", cfg, "--revoke", token_id))[0] == 0
    assert await api_status(running_agent, first) == 401  # at once
    assert await api_status(running_agent, second) == 200  # the other token still speaks for its enterprise
    code, _, err = await run_cli(capsys, "token", "-c", cfg, "--revoke", token_id)
    assert code == 2 and "no valid token" in err
    assert "revoked" in (await run_cli(capsys, "token", "-c", cfg, "--list"))[1]


async def test_the_instance_admin_revokes_on_the_page(
    running_agent: Agent, db_dsn: str, tmp_path: Path, capsys: Any
) -> None:
    await seed(running_agent.parts.pool)
    cfg = str(cli_config(running_agent, db_dsn, tmp_path))
    code, token, _ = await run_cli(capsys, "token", "-c", cfg, "--label", "crm sync")
    assert code == 0 and await api_status(running_agent, token) == 200
    url = f"{base(running_agent)}/admin/tokens"
    async with client(running_agent) as http:
        async with http.get(f"{url}.json") as resp:
            (listed,) = (await resp.json())["tokens"]
        assert listed["label"] == "crm sync" and listed["state"] == "valid" and token not in str(listed)
        async with http.get(url) as resp:
            assert f'value="{listed["id"]}"' in await resp.text()
        form = {"csrf_token": await csrf(http, url), "revoke": listed["id"]}
        async with http.post(url, data=form) as resp:
            assert resp.status == 200  # back on the page, the token listed as revoked
            assert 'data-state="revoked"' in await resp.text()
    assert await api_status(running_agent, token) == 401
    async with client(running_agent, "100") as http, http.get(f"{url}.json") as resp:
        assert resp.status == 403  # an enterprise's admin does not see the instance's tokens


async def test_the_instance_admin_issues_and_revokes_sign_in_links(running_agent: Agent) -> None:
    await seed(running_agent.parts.pool)
    url = f"{base(running_agent)}/admin/tokens"
    async with client(running_agent) as http:
        form = {"csrf_token": await csrf(http, url), "enterprise": "100", "role": "viewer", "minutes": "30"}
        async with http.post(url, data=form) as resp:
            assert resp.status == 200
            html = await resp.text()
        link = re.search(r"<code>(http[^<]+/admin/login\?token=[^<]+)</code>", html)
        assert link is not None
        given = link.group(1).replace(running_agent.config.agent.public_url, base(running_agent))
        async with http.post(url, data={**form, "enterprise": "9999"}) as resp:
            assert resp.status == 400  # no such enterprise
        async with http.post(url, data=form) as resp:
            second = re.search(r"login\?token=([^<]+)</code>", await resp.text())
        assert second is not None
        async with http.get(f"{url}.json") as resp:
            listed = (await resp.json())["links"]
        assert [x["state"] for x in listed] == ["open", "open"] and listed[0]["role"] == "viewer"
        async with http.post(url, data={"csrf_token": form["csrf_token"], "revoke_link": listed[0]["id"]}) as resp:
            assert resp.status == 200
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as someone, someone.get(given) as resp:
        assert resp.status == 200 and "/admin/100/" in str(resp.url)  # the first link: an enterprise viewer's
    revoked = f"{base(running_agent)}/admin/login?token={second.group(1)}"
    async with aiohttp.ClientSession() as other, other.get(revoked) as resp:
        assert resp.status == 401  # revoked before use (a browser with no session of that kind)
