"""smart-redirect over real sockets: recorded Asterisk requests in, SET VARIABLE lines out, within the deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

import pytest
from prometheus_client import CollectorRegistry

from agent.config.checks import Address
from agent.config.sections import AgiSection, PbxSection
from agent.ingest.frame import AmiMessage
from agent.redirect.server import AgiServer, hosts_of
from agent.redirect.variables import CALLERNAME, CRM, EXTEN, MANAGER, REASON, SOURCE, STATUS
from tests.agi_client import agi_call, agi_files, raw_session, recorded_request, request_with
from tests.agi_env import CUSTOMER_A, CUSTOMER_B, ENTERPRISE, UNKNOWN, agi_env
from tests.waiting import until

A_REQUEST = recorded_request("a_incoming_answered")


def expected_for(caller: str) -> tuple[str, str]:
    return {CUSTOMER_A: ("FOUND", "150"), UNKNOWN: ("NOT_FOUND", "")}[caller]


def caller_of(data: bytes) -> str:
    for line in data.decode().splitlines():
        if line.startswith("agi_callerid:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no agi_callerid")


RECORDED = {path.stem: path.read_bytes() for path in agi_files()}


@pytest.mark.parametrize("name", sorted(RECORDED))
async def test_every_recorded_request_gets_its_answer(name: str) -> None:
    data = RECORDED[name]
    request = data[: data.index(b"\n\n") + 2]
    assert data[len(request) :].endswith(b"HANGUP\n")  # what the recording says Asterisk sends after the session
    status, exten = expected_for(caller_of(data))
    async with agi_env() as env:
        got = await agi_call(env.port, request)
        assert got.eof, "the server half-closes after the last reply"
        assert got.status == status
        assert got.exten == exten
        assert got.commands[0] == (f'SET VARIABLE {EXTEN} "{exten}"')  # the variable the dialplan branches on
        assert set(got.variables) == {EXTEN, STATUS, MANAGER, CRM, REASON, SOURCE, CALLERNAME}
        assert got.variables[CRM] == ("retailcrm" if status == "FOUND" else "")
        assert got.variables[MANAGER] == ("Ivan Petrov" if status == "FOUND" else "")
        await until(lambda: not env.server.sessions, every=0.005)  # our HANGUP read, the socket closed


async def test_customer_b_goes_to_151_with_a_safe_manager_name() -> None:
    async with agi_env() as env:
        got = await agi_call(env.port, request_with(A_REQUEST, callerid=CUSTOMER_B))
    assert (got.status, got.exten) == ("FOUND", "151")
    assert got.variables[MANAGER] == "Anna Big Smith Jr."
    assert all('"' not in v and "\n" not in v for v in got.variables.values())


async def test_number_in_local_form_is_normalised_before_the_crm_sees_it() -> None:
    async with agi_env() as env:
        got = await agi_call(env.port, request_with(A_REQUEST, callerid="80291234567"))
        assert (got.status, got.exten) == ("FOUND", "150")
        assert env.crm.phones == [CUSTOMER_A]


async def test_crm_hanging_answers_timeout_in_time_and_warms_the_cache() -> None:
    deadline_ms = 200
    async with agi_env(deadline_ms=deadline_ms) as env:
        env.crm.delay = 0.5
        started = time.monotonic()
        got = await agi_call(env.port, A_REQUEST)
        assert got.first_command_s is not None
        assert got.first_command_s <= (deadline_ms + 50) / 1000, got.first_command_s
        assert time.monotonic() - started < 0.5  # the caller was not held for the CRM
        assert (got.status, got.exten) == ("TIMEOUT", "")
        await until(lambda: env.router.background == 0, every=0.005)  # the lookup finished in the background
        again = await agi_call(env.port, A_REQUEST)
        assert (again.status, again.exten) == ("FOUND", "150")
        assert again.first_command_s is not None and again.first_command_s < 0.1
        assert env.crm.requests == 1


async def test_no_enabled_crm_is_disabled() -> None:
    async with agi_env() as env:
        env.enabled[ENTERPRISE] = False
        got = await agi_call(env.port, A_REQUEST)
        assert (got.status, got.exten, got.variables[CRM]) == ("DISABLED", "", "")
        assert env.crm.requests == 0


async def test_settings_unreadable_is_error_in_time() -> None:
    async with agi_env() as env:
        env.source_error = ConnectionRefusedError("database down")
        got = await agi_call(env.port, A_REQUEST)
        assert (got.status, got.exten) == ("ERROR", "")


async def test_crm_failing_is_unavailable_naming_the_crm() -> None:
    async with agi_env() as env:
        env.crm.fail = True
        got = await agi_call(env.port, A_REQUEST)
        assert (got.status, got.exten, got.variables[CRM], got.variables[MANAGER]) == (
            "UNAVAILABLE",
            "",
            "retailcrm",
            "",
        )


async def test_single_flight_counted_at_the_crm() -> None:
    async with agi_env(deadline_ms=2000) as env:
        env.crm.delay = 0.2
        results = await asyncio.gather(*(agi_call(env.port, A_REQUEST) for _ in range(100)))
        assert {(r.status, r.exten) for r in results} == {("FOUND", "150")}
        assert env.crm.requests == 1
        assert env.source_calls == 1


async def test_notify_invalidation_takes_the_new_extension_at_once() -> None:
    async with agi_env() as env:
        assert (await agi_call(env.port, A_REQUEST)).exten == "150"
        env.crm.responsible[CUSTOMER_A] = ("8", "Anna")  # the CRM reassigns customer A to Anna (151)
        assert (await agi_call(env.port, A_REQUEST)).exten == "150"  # still cached
        env.router.invalidate(ENTERPRISE)
        got = await agi_call(env.port, A_REQUEST)
        assert (got.status, got.exten, got.variables[MANAGER]) == ("FOUND", "151", "Anna")
        env.extensions["8"] = "152"  # the enterprise's mapping changes: same NOTIFY
        env.router.invalidate(ENTERPRISE)
        assert (await agi_call(env.port, A_REQUEST)).exten == "152"


def ext_status(exten: str, status: str) -> AmiMessage:
    return AmiMessage(
        {
            "Event": "ExtensionStatus",
            "Exten": exten,
            "Context": "ext-hints",
            "Hint": f"PJSIP/{exten}",
            "Status": status,
            "StatusText": "x",
        }
    )


async def test_busy_manager_is_unavailable_unless_the_enterprise_redirects_anyway() -> None:
    async with agi_env() as env:
        env.states.feed([ext_status("150", "1")])
        got = await agi_call(env.port, A_REQUEST)
        assert (got.status, got.exten, got.variables[MANAGER]) == ("UNAVAILABLE", "", "Ivan Petrov")
        env.states.feed([ext_status("150", "0")])
        assert (await agi_call(env.port, A_REQUEST)).status == "FOUND"
        env.states.feed([ext_status("150", "8")])  # ringing with another call
        assert (await agi_call(env.port, A_REQUEST)).status == "UNAVAILABLE"
        env.when_busy[ENTERPRISE] = True
        env.router.invalidate(ENTERPRISE)
        got = await agi_call(env.port, A_REQUEST)
        assert (got.status, got.exten) == ("FOUND", "150")


async def test_enterprise_from_agi_argument_host_or_the_only_one() -> None:
    async with agi_env(pbx_hosts={"10.9.9.9": "100", "10.9.9.8": "200"}) as env:
        env.enabled["200"] = True
        assert (await agi_call(env.port, A_REQUEST)).status == "ERROR"  # loopback is no [[pbx]] host; two enterprises
        got = await agi_call(env.port, request_with(A_REQUEST, arg_1="200"))
        assert got.status == "FOUND"
        assert (await agi_call(env.port, request_with(A_REQUEST, arg_1="no such/ent"))).status == "ERROR"
    async with agi_env(pbx_hosts={"10.9.9.9": "100"}) as env:
        assert (await agi_call(env.port, A_REQUEST)).status == "FOUND"  # the only enterprise
    async with agi_env(pbx_hosts={"localhost": "100", "10.9.9.8": "200"}) as env:
        assert (await agi_call(env.port, A_REQUEST)).status == "FOUND"  # matched by the peer's address


async def test_unknown_script_gets_the_fallback() -> None:
    async with agi_env() as env:
        got = await agi_call(env.port, request_with(A_REQUEST, network_script="other-script"))
        assert (got.status, got.exten) == ("ERROR", "")


async def assert_still_serving(port: int) -> None:
    got = await agi_call(port, A_REQUEST)
    assert (got.status, got.exten) == ("FOUND", "150")


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\n\n",
        b"\x00\xff\xfe garbage\n\n",
        b"agi_network: yes\nno colon here\n\n",
        b"agi_network: yes\nagi_channel: x\n\n",  # no script
    ],
    ids=["http", "empty", "binary", "no-colon", "no-script"],
)
async def test_garbage_is_logged_and_closed(garbage: bytes, caplog: pytest.LogCaptureFixture) -> None:
    async with agi_env() as env:
        with caplog.at_level(logging.WARNING, logger="agent.redirect.server"):
            received, closed = await raw_session(env.port, garbage)
        assert (received, closed) == (b"", True)
        assert any("malformed" in r.getMessage() for r in caplog.records)
        await assert_still_serving(env.port)


async def test_oversized_request_is_logged_and_closed(caplog: pytest.LogCaptureFixture) -> None:
    async with agi_env() as env:
        with caplog.at_level(logging.WARNING, logger="agent.redirect.server"):
            received, closed = await raw_session(env.port, b"agi_x: " + b"a" * 100_000 + b"\n")
            assert (received, closed) == (b"", True)
            big = A_REQUEST[:-1] + b"".join(b"agi_v%d: %s\n" % (i, b"b" * 100) for i in range(200)) + b"\n"
            received, closed = await raw_session(env.port, big)
            assert (received, closed) == (b"", True)
        assert sum("over" in r.getMessage() for r in caplog.records) == 2
        await assert_still_serving(env.port)


async def test_incomplete_request_is_closed_at_the_deadline(caplog: pytest.LogCaptureFixture) -> None:
    async with agi_env(deadline_ms=150) as env:
        with caplog.at_level(logging.WARNING, logger="agent.redirect.server"):
            started = time.monotonic()
            received, closed = await raw_session(env.port, A_REQUEST[:100])
            assert (received, closed) == (b"", True)
            assert time.monotonic() - started < 0.15 + 0.1
        assert any("no complete request" in r.getMessage() for r in caplog.records)
        await assert_still_serving(env.port)


async def test_peer_closing_early_is_tolerated(caplog: pytest.LogCaptureFixture) -> None:
    async with agi_env() as env:
        with caplog.at_level(logging.INFO, logger="agent.redirect.server"):
            received, closed = await raw_session(env.port, A_REQUEST[:100], close_after_send=True)
            assert (received, closed) == (b"", True)
            env.crm.delay = 0.1  # gone while we are asking the CRM
            received, closed = await raw_session(
                env.port, request_with(A_REQUEST, callerid=CUSTOMER_B), close_after_send=True
            )
            assert closed
            env.crm.delay = 0
            # gone after reading the first command, without replying
            reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
            writer.write(A_REQUEST)
            assert (await reader.readline()).startswith(b"SET VARIABLE")
            writer.close()
            await writer.wait_closed()
            await until(lambda: not env.server.sessions, every=0.005)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        await assert_still_serving(env.port)


async def test_hangup_and_error_replies_from_asterisk() -> None:
    async with agi_env() as env:
        got = await agi_call(env.port, A_REQUEST, reply=b"510 Invalid or unknown command\n")
        assert len(got.commands) == 7 and got.eof
        got = await agi_call(env.port, A_REQUEST, reply=b"HANGUP\n")  # the caller hung up: stop at once
        assert len(got.commands) == 1 and got.eof


async def test_health_is_registered_critical_and_follows_the_listener() -> None:
    async with agi_env() as env:
        component = env.health.get("agi")
        assert component is not None and component.critical
        assert component.status == "ok"
        assert (await env.health.report())["status"] == "ok"
    assert cast(str, component.status) == "down"  # changed by the server's stop (mypy kept the narrowed "ok")


async def test_crlf_request_is_accepted_too() -> None:
    async with agi_env() as env:
        got = await agi_call(env.port, A_REQUEST.replace(b"\n", b"\r\n"))
        assert (got.status, got.exten) == ("FOUND", "150")


async def test_settings_hanging_answers_timeout_in_time() -> None:
    deadline_ms = 150
    async with agi_env(deadline_ms=deadline_ms) as env:
        release = env.source_gate = asyncio.Event()
        got = await agi_call(env.port, A_REQUEST)
        assert got.status == "TIMEOUT"
        assert got.first_command_s is not None and got.first_command_s <= (deadline_ms + 50) / 1000
        release.set()
        await until(lambda: env.router.background == 0, every=0.005)
        assert (await agi_call(env.port, A_REQUEST)).status == "FOUND"


def test_hosts_of_marks_a_host_shared_by_enterprises() -> None:
    sections = [
        PbxSection("a", "100", "u", "s", host="10.0.0.1"),
        PbxSection("b", "200", "u", "s", host="10.0.0.1"),
        PbxSection("c", "300", "u", "s", host="10.0.0.2"),
        PbxSection("d", "300", "u", "s", host="10.0.0.2"),
    ]
    assert hosts_of(sections) == {"10.0.0.1": "", "10.0.0.2": "300"}


async def test_metrics_count_answers_and_rejections() -> None:
    registry = CollectorRegistry()
    async with agi_env() as env:
        server = AgiServer(
            AgiSection(Address("127.0.0.1", 0), 400), env.router, None, {"127.0.0.1": ENTERPRISE}, registry=registry
        )
        await server.start()
        try:
            assert server.port is not None
            await agi_call(server.port, A_REQUEST)
            await raw_session(server.port, b"garbage\n\n")
        finally:
            await server.stop()
    assert registry.get_sample_value("pbx_agent_agi_requests_total", {"status": "FOUND"}) == 1
    assert registry.get_sample_value("pbx_agent_agi_rejected_total", {"reason": "malformed"}) == 1
    assert registry.get_sample_value("pbx_agent_agi_answer_seconds_count") == 1
