"""`pbx-agent backfill`: the calls only Asterisk's CDR has (Master.csv of cdr_csv, written here in its real
column order) are stored and planned once; calls already in `calls` are left alone; over SFTP too."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.config.load import load
from agent.config.sections import ConfigError, PbxSection, RecordingsSource, SshSection
from agent.repair import backfill as backfill_mod
from agent.repair import cdr
from agent.store import routing_rules as routing_store
from agent.store.calls import INSERT, row
from agent.store.database import Pool
from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm
from tests.fakes.retailcrm import FakeRetailCrm
from tests.fakes.ssh import FakeSshServer, new_key

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
MINSK = timezone(timedelta(hours=3))  # the PBX writes local times (usegmtime = no)


def q(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def when(at: datetime | None) -> str:
    return q(at.astimezone(MINSK).strftime("%Y-%m-%d %H:%M:%S")) if at is not None else ""


def cdr_line(
    src: str,
    dst: str,
    dcontext: str,
    channel: str,
    dstchannel: str,
    lastapp: str,
    start: datetime,
    answer: datetime | None,
    end: datetime,
    disposition: str,
    uniqueid: str,
    *,
    userfield: str = "",
    linkedid: str | None = None,
    sequence: int = 0,
    clid: str = "",
) -> str:
    """One row as cdr_csv writes it with loguniqueid, loguserfield (and newcdrcolumns when `linkedid`)."""
    billsec = int((end - answer).total_seconds()) if answer is not None else 0
    fields = [
        "",
        q(src),
        q(dst),
        q(dcontext),
        q(clid or f'"" <{src}>'),
        q(channel),
        q(dstchannel),
        q(lastapp),
        q(""),
        when(start),
        when(answer),
        when(end),
        str(int((end - start).total_seconds())),
        str(billsec),
        q(disposition),
        q("DOCUMENTATION"),
        q(uniqueid),
        q(userfield),
    ]
    fields[0] = q("")
    if linkedid is not None:
        fields += [q(""), q(linkedid), str(sequence)]
    return ",".join(fields) + "\n"


def uid(at: datetime, n: int) -> str:
    return f"{int(at.timestamp())}.{n}"


def master_csv(linked: bool) -> tuple[str, dict[str, str]]:
    """Calls of 2026-11-20 (UTC): A incoming to a ring group, 151 answers; B incoming, the IVR answers and
    the caller hangs up; C 150 calls out; D 150 calls 151; E is already stored; F is before the period."""
    lines: list[str] = []
    ids: dict[str, str] = {}

    def add(name: str, at: datetime, n: int, rows: list[tuple[str, ...]]) -> None:
        call = ids[name] = uid(at, n)
        for i, (src, dst, ctx, chan, dchan, app, ans, secs, disp, *user) in enumerate(rows):
            start = at + timedelta(seconds=i)
            end = start + timedelta(seconds=int(secs))
            answer = start + timedelta(seconds=int(ans)) if ans else None
            lines.append(
                cdr_line(
                    src,
                    dst,
                    ctx,
                    chan,
                    dchan,
                    app,
                    start,
                    answer,
                    end,
                    disp,
                    call,
                    userfield=user[0] if user else "",
                    linkedid=call if linked else None,
                    sequence=i,
                )
            )

    a = T0 + timedelta(hours=1)
    add(
        "A",
        a,
        10,
        [
            (
                "+375291234567",
                "375173880000",
                "from-trunk",
                "PJSIP/provider-0000000a",
                "PJSIP/150-0000000b",
                "Dial",
                "",
                "12",
                "NO ANSWER",
            ),
            (
                "+375291234567",
                "375173880000",
                "from-trunk",
                "PJSIP/provider-0000000a",
                "PJSIP/151-0000000c",
                "Dial",
                "6",
                "48",
                "ANSWERED",
                "/var/spool/asterisk/monitor/A.wav",
            ),
        ],
    )
    add(
        "B",
        T0 + timedelta(hours=2),
        20,
        [
            (
                "+375297654321",
                "375173880000",
                "from-trunk",
                "PJSIP/provider-00000014",
                "",
                "BackGround",
                "1",
                "9",
                "ANSWERED",
            )
        ],
    )
    add(
        "C",
        T0 + timedelta(hours=3),
        30,
        [
            (
                "150",
                "80291112233",
                "from-internal",
                "PJSIP/150-0000001e",
                "PJSIP/provider-0000001f",
                "Dial",
                "5",
                "35",
                "ANSWERED",
            )
        ],
    )
    add(
        "D",
        T0 + timedelta(hours=4),
        40,
        [("150", "151", "from-internal", "PJSIP/150-00000028", "PJSIP/151-00000029", "Dial", "3", "20", "ANSWERED")],
    )
    add(
        "E",
        T0 + timedelta(hours=5),
        50,
        [
            (
                "+375291234567",
                "375173880000",
                "from-trunk",
                "PJSIP/provider-00000032",
                "PJSIP/150-00000033",
                "Dial",
                "2",
                "30",
                "ANSWERED",
            )
        ],
    )
    add(
        "F",
        T0 - timedelta(days=2),
        60,
        [
            (
                "+375291234567",
                "375173880000",
                "from-trunk",
                "PJSIP/provider-0000003c",
                "PJSIP/150-0000003d",
                "Dial",
                "",
                "20",
                "NO ANSWER",
            )
        ],
    )
    lines.insert(3, "this line is not a CDR row\n")
    return "".join(lines), ids


def stored_e(ids: dict[str, str]) -> CallEvent:
    at = T0 + timedelta(hours=5)
    return CallEvent(
        event="ended",
        call_id=ids["E"],
        enterprise=ENTERPRISE,
        direction="in",
        phone="+375291234567",
        did="375173880000",
        extension="150",
        at=at,
        extensions=("150",),
        answered_by="150",
        result="answered",
        ring_seconds=2,
        talk_seconds=28,
        started_at=at,
        ended_at=at + timedelta(seconds=30),
        pbx="office",
    )


def test_cdr_rows_become_the_calls_the_tracker_would_have_made() -> None:
    for linked in (True, False):
        text, ids = master_csv(linked)
        parsed = cdr.parse(text.splitlines(keepends=True))  # the zone is read from the uniqueids
        assert parsed.skipped == 1 and len(parsed.rows) == 7
        calls = {
            g[0].call_key: cdr.to_event(g, ChannelRules(region="BY"), ENTERPRISE, "office")
            for g in cdr.group(parsed.rows)
        }
        a, b, c, d = (calls[ids[k]] for k in "ABCD")
        assert (a.direction, a.phone, a.extensions, a.answered_by, a.result) == (
            "in",
            "+375291234567",
            ("150", "151"),
            "151",
            "answered",
        )
        assert a.started_at == T0 + timedelta(hours=1) and a.talk_seconds == 42 and a.ring_seconds == 7
        assert a.recording == "/var/spool/asterisk/monitor/A.wav" and a.extra["backfilled"] is True
        assert (b.direction, b.answered_by, b.result, b.extensions) == ("in", None, "cancelled", ())
        assert (c.direction, c.phone, c.answered_by, c.result, c.talk_seconds) == (
            "out",
            "+375291112233",
            "150",
            "answered",
            30,
        )
        assert (d.direction, d.phone, d.answered_by) == ("internal", "150", "151")
    utc = cdr.parse([cdr_line("1", "2", "c", "x", "", "Hangup", T0, None, T0, "NO ANSWER", "pbx1-1.1")], UTC)
    assert utc.rows[0].start == T0.astimezone(MINSK).replace(tzinfo=UTC)  # as told: the file's times are UTC


def write_config(tmp_path: Path, dsn: str, cdr_csv: str) -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "state"\n[database]\ndsn = "{dsn}"\n'
        f'[[pbx]]\nname = "office"\nenterprise = "{ENTERPRISE}"\nusername = "agent"\nsecret = "s3cret"\n'
        f'region = "BY"\ncdr_csv = "{cdr_csv}"\n'
    )
    return cfg


def run(cfg: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "backfill", "-c", str(cfg), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def test_only_the_missing_calls_are_stored_and_planned_once(
    pool: Pool, db_dsn: str, tmp_path: Path, agent_env: dict[str, str]
) -> None:
    text, ids = master_csv(linked=True)
    (tmp_path / "Master.csv").write_text(text)
    await pool.execute(INSERT, *row(stored_e(ids)))
    cfg = write_config(tmp_path, db_dsn, str(tmp_path / "Master.csv"))
    async with FakeRetailCrm(api_key=API_KEY) as crm:
        await configure_retailcrm(pool, tmp_path / "state", crm)
    first = run(cfg, agent_env, "--pbx", "office", "--since", "2026-11-20")
    assert first.returncode == 0, first.stderr
    assert "5 call(s) in the period, 1 already stored; 4 backfilled" in first.stdout
    assert "[##############################] 5/5 calls" in first.stderr
    calls = {r["call_id"]: r for r in await pool.fetch("SELECT * FROM calls")}
    assert set(calls) == {ids[k] for k in "ABCDE"}
    for k in "ABCD":
        assert calls[ids[k]]["details"]["backfilled"] is True
        assert calls[ids[k]]["pbx"] == "office"
    assert "backfilled" not in (calls[ids["E"]]["details"] or {})
    uploads = await pool.fetch("SELECT idempotency_key, payload FROM deliveries WHERE kind = 'calls_upload'")
    assert sorted(r["idempotency_key"] for r in uploads) == sorted(f"retailcrm:{ids[k]}:upload" for k in "ABC")
    a = next(r["payload"] for r in uploads if ids["A"] in r["idempotency_key"])
    assert a["recording_pbx"] == "office" and a["call"]["code"] == "151"
    again = run(cfg, agent_env, "--pbx", "office", "--since", "2026-11-20")
    assert again.returncode == 0, again.stderr
    assert "5 already stored; 0 backfilled; 0 new deliveries" in again.stdout
    bad = run(cfg, agent_env, "--pbx", "branch", "--since", "2026-11-20")
    assert bad.returncode == 2 and "no [[pbx]] named 'branch'" in bad.stderr
    missing = run(cfg, agent_env, "--pbx", "office", "--since", "2026-11-20", "--cdr", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "cannot read the CDR" in missing.stderr


async def test_the_enterprises_routing_rules_hold(
    pool: Pool, db_dsn: str, tmp_path: Path, agent_env: dict[str, str]
) -> None:
    """A caller on the blocklist is stored but reaches no CRM, as the running agent would have done."""
    text, ids = master_csv(linked=True)
    (tmp_path / "Master.csv").write_text(text)
    cfg = write_config(tmp_path, db_dsn, str(tmp_path / "Master.csv"))
    async with FakeRetailCrm(api_key=API_KEY) as crm:
        await configure_retailcrm(pool, tmp_path / "state", crm)
    await routing_store.put(pool, ENTERPRISE, {"blocklist": ["+375291234567"]})
    done = run(cfg, agent_env, "--pbx", "office", "--since", "2026-11-20")
    assert done.returncode == 0, done.stderr
    assert {r["call_id"] for r in await pool.fetch("SELECT call_id FROM calls")} == {ids[k] for k in "ABCDE"}
    uploads = await pool.fetch("SELECT idempotency_key FROM deliveries WHERE kind = 'calls_upload'")
    assert sorted(r["idempotency_key"] for r in uploads) == sorted(f"retailcrm:{ids[k]}:upload" for k in "BC")


async def test_over_sftp_from_the_pbx(pool: Pool, db_dsn: str, tmp_path: Path) -> None:
    text, ids = master_csv(linked=False)  # classic columns: grouped by uniqueid
    remote = tmp_path / "pbx" / "Master.csv"
    remote.parent.mkdir()
    remote.write_text(text)
    async with FakeSshServer(new_key()) as server:
        (tmp_path / "keys").mkdir()
        key_file, known_hosts = server.write_client_files(tmp_path / "keys")
        ssh = SshSection(
            host="127.0.0.1", port=server.port, username=server.username, key_file=key_file, known_hosts=known_hosts
        )
        cfg = load(write_config(tmp_path, db_dsn, str(remote)))
        pbx: PbxSection = replace(cfg.pbx[0], ssh=ssh, cdr_csv=RecordingsSource("sftp", str(remote)))
        cfg = replace(cfg, pbx=(pbx,))
        args = argparse.Namespace(pbx="office", since=T0, until=T0 + timedelta(days=1), cdr=None, cdr_timezone=None)
        summary = await backfill_mod.backfill(cfg, args)
    assert (summary.calls, summary.known, summary.backfilled) == (5, 0, 5)
    assert {r["call_id"] for r in await pool.fetch("SELECT call_id FROM calls")} == {ids[k] for k in "ABCDE"}


def test_cdr_csv_in_the_config(tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path, "", "cdr/Master.csv"))
    assert cfg.pbx[0].cdr_source == RecordingsSource("local", str(tmp_path / "cdr" / "Master.csv"))
    default = replace(cfg.pbx[0], cdr_csv=None)
    assert default.cdr_source == RecordingsSource("local", "/var/log/asterisk/cdr-csv/Master.csv")
    for value, problem in (
        ("sftp:/var/log/asterisk/cdr-csv/Master.csv", "needs ssh"),
        ("ftp://pbx/Master.csv", 'expected "/path", "local:/path" or "sftp:/path"'),
        ("", "empty"),
    ):
        with pytest.raises(ConfigError, match=f"cdr_csv: .*{re.escape(problem)}"):
            load(write_config(tmp_path, "", value))


def test_uniqueids_that_cannot_be_from_the_call_do_not_set_the_zone() -> None:
    """The zone of Master.csv's local times is read from the uniqueids (epoch of the channel); ids whose epoch
    is days away from the row (a PBX clock set wrong, ids rewritten) would give an offset no zone has."""
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    far = uid(at - timedelta(days=400), 1)
    near = uid(at, 2)
    line = cdr_line("150", "151", "from-internal", "PJSIP/150-1", "PJSIP/151-1", "Dial", at, at, at, "ANSWERED", far)
    (row,) = cdr.parse([line]).rows  # no usable vote: the times are taken as UTC, not shifted by 400 days
    assert abs(row.start - at) <= timedelta(hours=14)
    mixed = cdr.parse([line, cdr_line("150", "151", "c", "PJSIP/150-2", "", "Dial", at, at, at, "ANSWERED", near)])
    assert {r.start for r in mixed.rows} == {mixed.rows[1].start}  # the one plausible id decides


def test_cdr_db_in_the_config(tmp_path: Path) -> None:
    def with_db(extra: str) -> Path:
        cfg = write_config(tmp_path, "", "cdr/Master.csv")
        cfg.write_text(cfg.read_text() + extra)
        return cfg

    pbx = load(with_db('cdr_db = "postgresql://cdr:p4ss@pbx/asterisk"\ncdr_db_table = "public.cdr"\n')).pbx[0]
    assert (pbx.cdr_db, pbx.cdr_db_table) == ("postgresql://cdr:p4ss@pbx/asterisk", "public.cdr")
    assert "p4ss" not in repr(pbx)  # a config printed in a log never shows the CDR database's password
    assert load(with_db("")).pbx[0].cdr_db is None
    assert load(with_db('cdr_db = "mysql://freepbx:p4ss@pbx/asteriskcdrdb"\n')).pbx[0].cdr_db
    for extra, problem in (
        ('cdr_db = "sqlite://u:p4ss@/cdr.db"\n', "cdr_db: expected a postgresql:// or mysql:// URL"),
        ('cdr_db = "postgresql://pbx/a"\ncdr_db_table = "cdr; DROP TABLE x"\n', "cdr_db_table: expected a table"),
    ):
        with pytest.raises(ConfigError, match=re.escape(problem)) as info:
            load(with_db(extra))
        assert "p4ss" not in str(info.value)


async def test_a_cdr_database_error_never_shows_its_password() -> None:
    from agent.repair import cdrdb

    since = datetime.now(UTC) - timedelta(hours=1)
    for dsn in ("postgresql://cdr:Pw-7731x@127.0.0.1:1/asterisk", "mysql://cdr:Pw-7731x@127.0.0.1:1/asteriskcdrdb"):
        with pytest.raises(cdrdb.CdrDbUnreadable) as info:
            await cdrdb.lines_since(dsn, "cdr", since)
        assert "cannot read the table cdr of cdr_db" in str(info.value) and "Pw-7731x" not in str(info.value)
