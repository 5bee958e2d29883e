"""Extensions discovered from the PBX over AMI: hints and PJSIP endpoints, merged into the list."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import aiohttp

from agent.config.sections import Config
from agent.store import extensions
from agent.store.database import Pool
from agent.store.extensions import Extension
from agent.store.secretbox import load_or_create_secret
from agent.web.tokens import TokenSigner
from tests import recordings
from tests.crm_setup import running
from tests.fakes.ami import FakeAmi
from tests.test_ami_link import pbx_for


def hints(fields: dict[str, str]) -> bytes:
    aid = fields.get("ActionID", "")
    items = "".join(
        f"Event: ExtensionStatus\r\nActionID: {aid}\r\nExten: {ext}\r\nContext: ext-hints\r\nHint: PJSIP/{ext}\r\n"
        f"Status: 0\r\nStatusText: Idle\r\n\r\n"
        for ext in ("150", "151", "152", "*97")
    )
    return (
        f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\nMessage: Extension Statuses will follow"
        f"\r\n\r\n{items}Event: ExtensionStateListComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
        "ListItems: 4\r\n\r\n"
    ).encode()


def endpoints(fields: dict[str, str]) -> bytes:
    aid = fields.get("ActionID", "")
    items = "".join(
        f"Event: EndpointList\r\nActionID: {aid}\r\nObjectType: endpoint\r\nObjectName: {name}\r\n"
        "DeviceState: Not in use\r\nActiveChannels: \r\n\r\n"
        for name in ("153", "provider")
    )
    return (
        f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\nMessage: A listing of Endpoints follows,"
        f" presented as EndpointList events\r\n\r\n{items}Event: EndpointListComplete\r\nActionID: {aid}\r\n"
        "EventList: Complete\r\nListItems: 2\r\n\r\n"
    ).encode()


async def test_discover_adds_what_the_pbx_has_and_keeps_names(
    pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    directory = recordings.recordings_dir()
    async with FakeAmi(
        directory / "p_a_incoming_answered.ami",
        speed=math.inf,
        responders={"ExtensionStateList": hints, "PJSIPShowEndpoints": endpoints},
    ) as ami:
        config = replace(make_config(db_dsn), pbx=(replace(pbx_for(ami), enterprise="0001"),))
        async with running(config) as agent:
            await pool.execute("INSERT INTO enterprises (number, name) VALUES ('0001', 'Shop')")
            await extensions.replace(pool, "0001", [Extension("150", "Ivan Petrov"), Extension("199", "Fax")])
            link = agent.pipelines["office"].link
            await link.connected.wait()
            token = TokenSigner(load_or_create_secret(config.agent.state_dir)).issue("0001", 1)
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
                http.post(f"http://127.0.0.1:{agent.parts.http_port}/api/enterprises/0001/extensions/discover") as resp,
            ):
                body = await resp.json()
                assert resp.status == 200, body
        assert body["added"] == ["151", "152", "153"]  # *97 and the trunk endpoint are not extensions
        listed = {e["extension"]: e["display_name"] for e in body["extensions"]}
        assert listed == {"150": "Ivan Petrov", "199": "Fax", "151": "", "152": "", "153": ""}
        assert {e.extension for e in await extensions.list_for(pool, "0001")} == set(listed)
