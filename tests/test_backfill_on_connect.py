"""Backfill on connect: after a (re)connect the agent takes the calls it missed from the PBX's CDR
(a real Master.csv file, a real AMI link to the fake Asterisk, real PostgreSQL, the fake RetailCRM)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomysql
import pytest

from agent.app import Agent
from agent.config import sections
from agent.config.sections import Config, RecordingsSource
from agent.repair import catchup, cdr
from agent.repair.catchup import CdrCatchUp
from agent.store.calls import INSERT, row
from agent.store.database import Pool
from agent.tracking.event import CallEvent
from tests import cel_calls, recordings
from tests.admin_client import base, client
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm, drained, running
from tests.fakes.ami import FakeAmi, load_recording
from tests.fakes.retailcrm import FakeRetailCrm
from tests.mariadb import mariadb
from tests.test_ami_link import pbx_for
from tests.test_backfill import cdr_line, uid
from tests.test_cel import CEL_PGSQL, blind_transfer_cdr, insert_cel
from tests.waiting import until

RECORDING = "p_a_incoming_answered"  # +375291234567 calls in, 150 answers


@pytest.fixture(autouse=True)
def _short_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catchup, "SETTLE", timedelta(seconds=0.2))


_started: list[FakeAmi] = []


async def started(ami: FakeAmi) -> FakeAmi:
    """The fake listening (its port goes into the config); stopped after the test."""
    await ami.start()
    _started.append(ami)
    return ami


@pytest.fixture(autouse=True)
async def _stop_fake_amis() -> AsyncIterator[None]:
    yield
    while _started:
        await _started.pop().stop()


@pytest.fixture
async def fake_crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        yield fake


def call_rows(
    at: datetime,
    n: int,
    *,
    linkedid: str | None = None,
    dst_ext: str = "150",
    disposition: str = "ANSWERED",
    secs: int = 20,
) -> str:
    """One incoming call of one row as cdr_csv writes it (newcdrcolumns: linkedid = the call's id)."""
    uniqueid = linkedid or uid(at, n)
    answer = at + timedelta(seconds=3) if disposition == "ANSWERED" else None
    return cdr_line(
        "+375297777777",
        "375173880000",
        "from-trunk",
        f"PJSIP/provider-{n:08x}",
        f"PJSIP/{dst_ext}-{n:08x}",
        "Dial",
        at,
        answer,
        at + timedelta(seconds=secs),
        disposition,
        uniqueid,
        linkedid=uniqueid,
        sequence=n,
    )


def stored(call_id: str, ended_at: datetime) -> tuple[object, ...]:
    return row(stored_event(call_id, ended_at))


def stored_event(call_id: str, ended_at: datetime | None = None) -> CallEvent:
    ended_at = ended_at or datetime.now(UTC)
    return CallEvent(
        event="ended",
        call_id=call_id,
        enterprise=ENTERPRISE,
        direction="in",
        phone="+375291112233",
        did=None,
        extension="150",
        at=ended_at,
        extensions=("150",),
        answered_by="150",
        result="answered",
        ring_seconds=2,
        talk_seconds=10,
        started_at=ended_at - timedelta(seconds=12),
        ended_at=ended_at,
        pbx="office",
    )


def agent_config(make_config: Callable[..., Config], db_dsn: str, ami: FakeAmi, cdr_csv: Path | None) -> Config:
    pbx = pbx_for(ami)
    if cdr_csv is not None:
        pbx = replace(pbx, cdr_csv=RecordingsSource("local", str(cdr_csv)))
    return replace(make_config(db_dsn), pbx=(pbx,))


async def catch_ups(agent: Agent, n: int, within: float = 15) -> dict[str, object]:
    """Wait until the PBX's catch-up has run `n` times; its /health report."""
    done = agent.pipelines["office"].follower
    assert isinstance(done, CdrCatchUp)
    await until(lambda: done.runs >= n, within=within)
    report = (await agent.health.report())["components"]["pbx:office"]["backfill"]
    assert isinstance(report, dict)
    return report


async def test_after_a_reconnect_exactly_the_missed_calls_are_delivered_once(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, tmp_path: Path, make_config: Callable[..., Config]
) -> None:
    directory = recordings.recordings_dir()
    _, messages = load_recording(directory / f"{RECORDING}.ami")
    live_id = next(m.get("Linkedid") for m in messages if m.name == "Newchannel")
    hangup = next(m for m in messages if m.name == "HangupRequest")
    # held before the hang-up: the call is up when the link drops and when it comes back
    ami = await started(FakeAmi(directory / f"{RECORDING}.ami", speed=math.inf, pause_at=hangup.start))
    cdr_csv = tmp_path / "Master.csv"
    config = agent_config(make_config, db_dsn, ami, cdr_csv)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    async with running(config) as agent:
        await ami.wait_paused(within=10)
        first = await catch_ups(agent, 1)  # the first start of this PBX: nothing stored, nothing to catch up
        assert first["error"] is None and first["calls"] == 0 and "nothing to catch up" in str(first["note"])

        down = datetime.now(UTC).replace(microsecond=0)
        missed, known, old = (
            uid(down - timedelta(seconds=40), 1),
            uid(down - timedelta(seconds=30), 2),
            uid(down - timedelta(hours=1), 3),
        )
        cdr_csv.write_text(
            call_rows(down - timedelta(hours=1), 3)  # long before the window: not this catch-up's business
            + call_rows(down - timedelta(seconds=40), 1)  # ended while we were away (within the margin)
            + call_rows(down - timedelta(seconds=30), 2)  # stored already
            # the live call: a leg that rang 151 for nothing is in the CDR already; the call goes on
            + call_rows(
                down - timedelta(seconds=25), 4, linkedid=live_id, dst_ext="151", disposition="NO ANSWER", secs=5
            )
        )
        await pool.execute(INSERT, *stored(known, down - timedelta(seconds=10)))
        await ami.drop_clients()
        await ami.wait_logins(2, within=10)
        report = await catch_ups(agent, 2)
        assert report["error"] is None and report["calls"] == 1
        await drained(pool, at_least=1)
        assert [[c["externalId"] for c in upload] for upload in fake_crm.uploads] == [[missed]]
        assert agent.pipelines["office"].tracker.live_calls() == 1

        ami.unpause()  # the live call ends over AMI: delivered once, whole, by the live path
        await ami.wait_finished(within=10)
        await drained(pool, at_least=2)
        assert agent.metrics.registry.get_sample_value("pbx_agent_calls_backfilled_total", {"pbx": "office"}) == 1
    uploads = {c["externalId"]: c for upload in fake_crm.uploads for c in upload}
    assert sorted(uploads) == sorted([missed, live_id]) and len(fake_crm.uploads) == 2
    assert (uploads[live_id]["result"], uploads[live_id]["code"]) == ("answered", "150")
    details = {r["call_id"]: r["details"] for r in await pool.fetch("SELECT call_id, details FROM calls")}
    assert details[missed]["backfilled"] is True
    assert not (details[live_id] or {}).get("backfilled")
    assert old not in details and fake_crm.duplicates_seen == 0


async def test_at_start_the_calls_after_the_last_stored_one(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, tmp_path: Path, make_config: Callable[..., Config]
) -> None:
    """The agent was stopped: the window starts at the last call it stored for this PBX."""
    directory = recordings.recordings_dir()
    ami = await started(FakeAmi(directory / f"{RECORDING}.ami", speed=math.inf, pause_at=0))  # an idle PBX
    now = datetime.now(UTC).replace(microsecond=0)
    last = now - timedelta(hours=2)
    await pool.execute(INSERT, *stored("1.1", last))
    cdr_csv = tmp_path / "Master.csv"
    cdr_csv.write_text(
        call_rows(last - timedelta(minutes=10), 5)  # before the last stored call: seen then
        + call_rows(last + timedelta(minutes=30), 6)  # while the agent was stopped
        + call_rows(now - timedelta(minutes=5), 7)
    )
    config = agent_config(make_config, db_dsn, ami, cdr_csv)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    async with running(config) as agent:
        report = await catch_ups(agent, 1)
        assert report["error"] is None and report["calls"] == 2
        assert report["since"] == (last - catchup.MARGIN).isoformat()
        await drained(pool, at_least=2)
    assert sorted(c["externalId"] for u in fake_crm.uploads for c in u) == sorted(
        [uid(last + timedelta(minutes=30), 6), uid(now - timedelta(minutes=5), 7)]
    )


async def test_a_missing_cdr_is_a_warning_and_a_health_field(
    fake_crm: FakeRetailCrm,
    pool: Pool,
    db_dsn: str,
    tmp_path: Path,
    make_config: Callable[..., Config],
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = recordings.recordings_dir()
    ami = await started(FakeAmi(directory / f"{RECORDING}.ami", speed=math.inf, pause_at=0))
    await pool.execute(INSERT, *stored("1.1", datetime.now(UTC) - timedelta(minutes=5)))
    config = agent_config(make_config, db_dsn, ami, tmp_path / "nope" / "Master.csv")
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    with caplog.at_level(logging.WARNING, logger="agent.repair.catchup"):
        async with running(config) as agent:
            report = await catch_ups(agent, 1)
            assert "cannot read the CDR" in str(report["error"]) and "nope/Master.csv" in str(report["error"])
            health = await agent.health.report()
            assert health["components"]["pbx:office"]["status"] == "ok"
            assert health["components"]["pbx:office"]["connected"] is True
            async with client(agent, ENTERPRISE) as http:  # the admin sees it on the enterprise's overview
                async with http.get(f"{base(agent)}/admin/{ENTERPRISE}/overview.json") as resp:
                    [pbx] = (await resp.json())["pbx"]
                assert "cannot read the CDR" in pbx["backfill"]["error"]
                async with http.get(f"{base(agent)}/admin/{ENTERPRISE}/overview") as resp:
                    assert "cannot read the CDR" in await resp.text()
            ami.unpause()  # the agent goes on: the live call is delivered
            await ami.wait_finished(within=10)
            await drained(pool, at_least=1)
            assert len(fake_crm.uploads) == 1
            await ami.drop_clients()  # and tries again on the next connect
            await catch_ups(agent, 2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "agent.repair.catchup"]
    assert len(warnings) == 2 and "backfill office: cannot read the CDR" in warnings[0].getMessage()


async def test_the_cdr_at_its_standard_place_is_read_without_configuration(
    fake_crm: FakeRetailCrm,
    pool: Pool,
    db_dsn: str,
    tmp_path: Path,
    make_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The agent was stopped for a while; nobody set cdr_csv: the standard Master.csv gives the missed call."""
    directory = recordings.recordings_dir()
    standard = tmp_path / "var-log-asterisk" / "Master.csv"
    standard.parent.mkdir()
    monkeypatch.setattr(sections, "DEFAULT_CDR_CSV", str(standard))
    ami = await started(FakeAmi(directory / f"{RECORDING}.ami", speed=math.inf, pause_at=0))
    now = datetime.now(UTC).replace(microsecond=0)
    await pool.execute(INSERT, *stored("1.1", now - timedelta(minutes=20)))
    standard.write_text(call_rows(now - timedelta(minutes=5), 8))  # while the agent was stopped
    config = agent_config(make_config, db_dsn, ami, None)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    async with running(config) as agent:
        report = await catch_ups(agent, 1)
        assert report["error"] is None and report["calls"] == 1
        await drained(pool, at_least=1)
    assert [c["externalId"] for u in fake_crm.uploads for c in u] == [uid(now - timedelta(minutes=5), 8)]


@pytest.mark.parametrize("cdr", ["missing", "without uniqueids"])
async def test_no_usable_cdr_at_the_standard_place_is_a_note_not_an_error(
    cdr: str,
    fake_crm: FakeRetailCrm,
    pool: Pool,
    db_dsn: str,
    tmp_path: Path,
    make_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = recordings.recordings_dir()
    standard = tmp_path / "Master.csv"
    if cdr == "without uniqueids":  # cdr_csv as shipped, without loguniqueid: 17 columns
        standard.write_text('"","+375297777777","150","from-trunk","","PJSIP/a","PJSIP/b","Dial","",' + "x," * 7 + "\n")
    monkeypatch.setattr(sections, "DEFAULT_CDR_CSV", str(standard))
    ami = await started(FakeAmi(directory / f"{RECORDING}.ami", speed=math.inf, pause_at=0))
    await pool.execute(INSERT, *stored("1.1", datetime.now(UTC) - timedelta(minutes=5)))
    with caplog.at_level(logging.INFO, logger="agent.repair.catchup"):
        async with running(agent_config(make_config, db_dsn, ami, None)) as agent:
            report = await catch_ups(agent, 1)
            assert report["error"] is None
            assert ("cannot read the CDR" if cdr == "missing" else "loguniqueid") in str(report["note"])
            assert "not recovered" in str(report["note"])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "agent.repair.catchup"]


CDR_PGSQL = """
CREATE TABLE cdr (
    calldate timestamp with time zone NOT NULL DEFAULT now(), clid varchar(80) NOT NULL DEFAULT '',
    src varchar(80) NOT NULL DEFAULT '', dst varchar(80) NOT NULL DEFAULT '',
    dcontext varchar(80) NOT NULL DEFAULT '', channel varchar(80) NOT NULL DEFAULT '',
    dstchannel varchar(80) NOT NULL DEFAULT '', lastapp varchar(80) NOT NULL DEFAULT '',
    lastdata varchar(80) NOT NULL DEFAULT '', duration bigint NOT NULL DEFAULT 0,
    billsec bigint NOT NULL DEFAULT 0, disposition varchar(45) NOT NULL DEFAULT '',
    amaflags bigint NOT NULL DEFAULT 0, accountcode varchar(20) NOT NULL DEFAULT '',
    uniqueid varchar(150) NOT NULL DEFAULT '', userfield varchar(255) NOT NULL DEFAULT '',
    peeraccount varchar(20) NOT NULL DEFAULT '', linkedid varchar(150) NOT NULL DEFAULT '',
    sequence int NOT NULL DEFAULT 0
)
"""  # the table contrib/scripts of Asterisk give cdr_pgsql


async def test_the_cdr_in_postgresql_is_read_when_cdr_db_names_it(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    """cdr_pgsql: the agent was stopped; the calls of those minutes come from the PBX's cdr table."""
    directory = recordings.recordings_dir()
    ami = await started(FakeAmi(directory / f"{RECORDING}.ami", speed=math.inf, pause_at=0))  # an idle PBX
    now = datetime.now(UTC).replace(microsecond=0)
    await pool.execute(INSERT, *stored("1.1", now - timedelta(minutes=30)))
    await pool.execute(CDR_PGSQL)
    missed = [(now - timedelta(minutes=20), 11, "ANSWERED"), (now - timedelta(minutes=10), 12, "NO ANSWER")]
    for at, n, disposition in missed:
        await pool.execute(
            "INSERT INTO cdr (calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, duration, billsec,"
            " disposition, uniqueid, linkedid, sequence) VALUES ($1, '', '+375297777777', '375173880000',"
            " 'from-trunk', $2, $3, 'Dial', 20, $4, $5, $6, $6, $7)",
            at,
            f"PJSIP/provider-{n:08x}",
            f"PJSIP/150-{n:08x}",
            17 if disposition == "ANSWERED" else 0,
            disposition,
            uid(at, n),
            n,
        )
    config = agent_config(make_config, db_dsn, ami, None)
    config = replace(config, pbx=(replace(config.pbx[0], cdr_db=db_dsn),))
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    async with running(config) as agent:
        report = await catch_ups(agent, 1)
        assert report["error"] is None and report["calls"] == 2
        await drained(pool, at_least=2)
    uploads = {c["externalId"]: c for u in fake_crm.uploads for c in u}
    assert sorted(uploads) == sorted(uid(at, n) for at, n, _ in missed)
    assert uploads[uid(missed[0][0], 11)]["result"] == "answered"
    assert uploads[uid(missed[1][0], 12)]["result"] == "no answer"


FREEPBX_CDR = """
CREATE TABLE cdr (
    calldate datetime NOT NULL DEFAULT '1000-01-01 00:00:00', clid varchar(80) NOT NULL DEFAULT '',
    src varchar(80) NOT NULL DEFAULT '', dst varchar(80) NOT NULL DEFAULT '',
    dcontext varchar(80) NOT NULL DEFAULT '', channel varchar(80) NOT NULL DEFAULT '',
    dstchannel varchar(80) NOT NULL DEFAULT '', lastapp varchar(80) NOT NULL DEFAULT '',
    lastdata varchar(80) NOT NULL DEFAULT '', duration int(11) NOT NULL DEFAULT 0,
    billsec int(11) NOT NULL DEFAULT 0, disposition varchar(45) NOT NULL DEFAULT '',
    amaflags int(11) NOT NULL DEFAULT 0, accountcode varchar(20) NOT NULL DEFAULT '',
    uniqueid varchar(32) NOT NULL DEFAULT '', userfield varchar(255) NOT NULL DEFAULT '',
    did varchar(50) NOT NULL DEFAULT '', recordingfile varchar(255) NOT NULL DEFAULT '',
    cnum varchar(80) NOT NULL DEFAULT '', cnam varchar(80) NOT NULL DEFAULT '',
    outbound_cnum varchar(80) NOT NULL DEFAULT '', outbound_cnam varchar(80) NOT NULL DEFAULT '',
    dst_cnam varchar(80) NOT NULL DEFAULT '', linkedid varchar(32) NOT NULL DEFAULT '',
    peeraccount varchar(80) NOT NULL DEFAULT '', sequence int(11) NOT NULL DEFAULT 0,
    KEY calldate (calldate)
)
"""  # asteriskcdrdb.cdr as FreePBX creates it


async def test_the_cdr_in_mysql_is_read_as_freepbx_keeps_it(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    directory = recordings.recordings_dir()
    ami = await started(FakeAmi(directory / f"{RECORDING}.ami", speed=math.inf, pause_at=0))  # an idle PBX
    now = datetime.now(UTC).replace(microsecond=0)
    await pool.execute(INSERT, *stored("1.1", now - timedelta(minutes=30)))
    at = now - timedelta(minutes=10)
    async with mariadb() as port:
        conn = await aiomysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute("CREATE DATABASE asteriskcdrdb")
                await cursor.execute("USE asteriskcdrdb")
                await cursor.execute(FREEPBX_CDR)
                await cursor.execute(
                    "INSERT INTO cdr (calldate, src, dst, dcontext, channel, dstchannel, lastapp, duration, billsec,"
                    " disposition, uniqueid, linkedid, recordingfile) VALUES (%s, '+375297777777', '375173880000',"
                    " 'from-trunk', 'PJSIP/provider-0000000b', 'PJSIP/150-0000000c', 'Dial', 30, 25, 'ANSWERED',"
                    " %s, %s, %s)",
                    (at.replace(tzinfo=None), uid(at, 21), uid(at, 21), "in-375297777777-150.wav"),
                )
        finally:
            conn.close()
        config = agent_config(make_config, db_dsn, ami, None)
        cdr_db = f"mysql://freepbx:secret@127.0.0.1:{port}/asteriskcdrdb"
        config = replace(config, pbx=(replace(config.pbx[0], cdr_db=cdr_db),))
        await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
        async with running(config) as agent:
            report = await catch_ups(agent, 1)
            assert report["error"] is None and report["calls"] == 1
            await drained(pool, at_least=1)
    ((call,),) = fake_crm.uploads
    assert call["externalId"] == uid(at, 21) and call["result"] == "answered"
    recording = await pool.fetchval("SELECT recording FROM calls WHERE call_id = $1", uid(at, 21))
    assert recording == "in-375297777777-150.wav"  # FreePBX's recordingfile, where cdr_csv has the userfield


async def test_a_stop_before_the_catch_up_sends_the_reconciled_calls_on_as_closed() -> None:
    """A stop during the settle wait: the calls the reconcile closed are not held back forever (the planner keeps
    them in its journal at stop)."""
    from prometheus_client import CollectorRegistry, Counter

    from agent.repair.catchup import CatchUpStore
    from agent.tracking.channels import ChannelRules
    from agent.web.health import ComponentHealth

    pbx = replace(pbx_for(FakeAmi(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n\r\n")), cdr_csv=None)
    backfilled = Counter("b", "b", ["pbx"], registry=CollectorRegistry())
    follower = CdrCatchUp(pbx, ChannelRules(), CatchUpStore(None, None), ComponentHealth(critical=False), backfilled)  # type: ignore[arg-type]
    released: list[CallEvent] = []
    closed = [stored_event("9.9"), stored_event("9.10")]
    follower.request(None, datetime.now(UTC) + timedelta(hours=1), set(), closed, released.append)
    follower.request(None, datetime.now(UTC) + timedelta(hours=1), set(), [stored_event("9.11")], released.append)
    task = asyncio.create_task(follower.run())
    await asyncio.sleep(0.05)  # waiting out the settle time of the first
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [e.call_id for e in released] == ["9.9", "9.10", "9.11"]


async def test_the_cel_beside_the_cdr_gives_each_manager_of_a_transferred_call_his_talk(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    """cdr_pgsql with cel_pgsql: the CDR says who answered last; the CEL table beside it adds each manager's
    talk (`legs`) and the transfer, which the catch-up stores as the live tracker would have."""
    directory = recordings.recordings_dir()
    ami = await started(FakeAmi(directory / f"{RECORDING}.ami", speed=math.inf, pause_at=0))  # an idle PBX
    now = datetime.now(UTC).replace(microsecond=0)
    await pool.execute(INSERT, *stored("1.1", now - timedelta(minutes=30)))
    epoch = int((now - timedelta(minutes=10)).timestamp())
    script, call = cel_calls.blind_transfer(epoch)
    await pool.execute(CDR_PGSQL)
    await pool.execute(CEL_PGSQL)
    for line in blind_transfer_cdr(datetime.fromtimestamp(epoch, UTC), call):
        (row_,) = cdr.parse([line], UTC).rows
        await pool.execute(
            "INSERT INTO cdr (calldate, src, dst, dcontext, channel, dstchannel, lastapp, duration, billsec,"
            " disposition, uniqueid, linkedid, sequence)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            row_.start, row_.src, row_.dst, row_.dcontext, row_.channel, row_.dstchannel, row_.lastapp,
            row_.duration, row_.billsec, row_.disposition, row_.uniqueid, row_.linkedid, row_.sequence,
        )  # fmt: skip
    await insert_cel(pool, script)
    config = agent_config(make_config, db_dsn, ami, None)
    config = replace(config, pbx=(replace(config.pbx[0], cdr_db=db_dsn),))
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    async with running(config) as agent:
        report = await catch_ups(agent, 1)
        assert report["error"] is None and report["calls"] == 1
        assert report["cel"] == f"{len(script.rows)} event(s) of 1 call(s)"
        await drained(pool, at_least=1)
    ((upload,),) = fake_crm.uploads
    assert upload["externalId"] == call and upload["result"] == "answered" and upload["code"] == "151"
    details = await pool.fetchval("SELECT details FROM calls WHERE call_id = $1", call)
    assert details["legs"] == [{"extension": "150", "talk_seconds": 3.0}, {"extension": "151", "talk_seconds": 14.0}]
    assert details["transfers"] == 1
