"""The CEL refines what the CDR says of a call the agent missed: who answered (a pickup, a transfer, a
forward to a mobile), who rang, each one's talk. Pure tests over CEL records in main/cel.c's shape
(tests/cel_calls.py), then the catch-up reading the CEL table beside a cdr_pgsql CDR, and FreePBX's
asteriskcdrdb.cel in a real MariaDB."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomysql
import pytest

from agent.config.load import load as load_config
from agent.config.sections import ConfigError, PbxSection, RecordingsSource
from agent.repair import cdr, cel
from agent.repair.celsource import CelUnavailable, read_cel
from agent.store.database import Pool
from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from tests import cel_calls
from tests.mariadb import mariadb
from tests.test_backfill import cdr_line

RULES = ChannelRules()
EPOCH = 1795481567


def events_of(script: cel_calls.CelScript, call: str) -> list[cel.CelEvent]:
    parsed = cel.parse_lines(script.csv_lines())
    assert len(parsed) == len(script.rows)  # every line of the sample mapping is read
    return cel.by_call(parsed)[call]


def test_a_pickup_is_answered_by_the_picker_and_the_target_only_rang() -> None:
    script, call = cel_calls.pickup(EPOCH)
    got = cel.account(events_of(script, call), RULES)
    assert got.pickers == ["151"]
    assert got.last_talker == "151"
    assert got.legs == {"151": pytest.approx(6.0, abs=0.01)}
    assert got.rang[:1] == ["150"]


def test_a_blind_transfer_gives_each_manager_his_own_talk() -> None:
    script, call = cel_calls.blind_transfer(EPOCH)
    got = cel.account(events_of(script, call), RULES)
    assert got.transfers == 1 and got.last_talker == "151"
    assert got.legs == {"150": pytest.approx(3.0), "151": pytest.approx(14.0)}


def test_an_attended_transfer_counts_only_talk_with_the_customer() -> None:
    """The consultation (150 with 152, the customer on hold) is no talk with the customer."""
    script, call = cel_calls.attended_transfer(EPOCH)
    got = cel.account(events_of(script, call), RULES)
    assert got.last_talker == "152"
    assert got.legs == {"150": pytest.approx(11.0), "152": pytest.approx(17.0)}
    assert got.rang == ["150", "152"]


def test_a_forward_to_a_mobile_belongs_to_the_manager_who_forwarded() -> None:
    script, call = cel_calls.forward(EPOCH)
    got = cel.account(events_of(script, call), RULES)
    assert got.last_talker is None  # no phone of the office talked
    assert (got.forwarded_by, got.forwarded_to) == ("150", "+375296660150")
    assert got.outside_talk == pytest.approx(9.006, abs=0.01)


def test_json_lines_and_other_column_orders_are_read() -> None:
    script, call = cel_calls.blind_transfer(EPOCH)
    as_json = [json.dumps({k.upper() if k == "eventtype" else k: v for k, v in r.items()}) + "\n" for r in script.rows]
    assert len(cel.parse_lines(as_json)) == len(script.rows)
    fields = ["EventTime", "EventType", "ChanName", "UniqueID", "LinkedID", "Peer", "Extra"]
    lines = [
        ",".join(json.dumps(str(r[k])) for k in ("eventtime", "eventtype", "channame", "uniqueid", "linkedid", "peer"))
        + ',"'
        + r["extra"].replace('"', '""')
        + '"\n'
        for r in script.rows
    ]
    parsed = cel.parse_lines(lines, fields)
    assert cel.account(cel.by_call(parsed)[call], RULES).legs == {"150": pytest.approx(3.0), "151": pytest.approx(14.0)}
    assert cel.parse_lines(lines) == []  # the sample mapping has 20 columns: these lines are not it


def forward_cdr(at: datetime, call: str, epoch: int = EPOCH) -> list[str]:
    """The CDR of the forwarded call (p_t's three Cdr): 150's NO ANSWER, the Local leg answered, its trunk leg."""
    local = "Local/+375296660150@from-internal-00000000;1"
    return [
        cdr_line("+375291234567", "375173880000", "from-trunk", "PJSIP/provider-00000007", "PJSIP/150-00000008",
                 "Dial", at, None, at + timedelta(seconds=4), "NO ANSWER", call, linkedid=call, sequence=1),
        cdr_line("+375291234567", "375173880000", "from-trunk", "PJSIP/provider-00000007", local, "Dial",
                 at + timedelta(seconds=4), at + timedelta(seconds=7), at + timedelta(seconds=16), "ANSWERED", call,
                 linkedid=call, sequence=2),
        cdr_line("+375291234567", "+375296660150", "from-internal", local.replace(";1", ";2"),
                 "PJSIP/provider-00000009", "Dial", at + timedelta(seconds=4), at + timedelta(seconds=7),
                 at + timedelta(seconds=16), "ANSWERED", f"{epoch + 4}.10", linkedid=call, sequence=3),
    ]  # fmt: skip


def from_cdr(lines: list[str]) -> CallEvent:
    (rows,) = cdr.group(cdr.parse(lines).rows)
    return cdr.to_event(rows, RULES, "0001", "office")


def test_a_forwarded_call_from_the_cdr_and_from_the_cel() -> None:
    """The CDR shows 150 not answering and a Local leg to the mobile answered: the call is 150's (the rule the
    live tracker follows); the CEL says the same from FORWARD and the bridges, with the talk to the ms."""
    script, call = cel_calls.forward(EPOCH)
    at = datetime.fromtimestamp(EPOCH, UTC)
    event = from_cdr(forward_cdr(at, call))
    assert (event.result, event.answered_by, event.forwarded_to) == ("answered", "150", "+375296660150")
    assert (event.ring_seconds, event.talk_seconds) == (7.0, 9.0)
    better = cel.refine(event, cel.by_call(cel.parse_lines(script.csv_lines()))[call], RULES)
    assert better.result == "answered" and better.answered_by == "150" and better.extension == "150"
    assert better.forwarded_to == "+375296660150"
    assert better.talk_seconds == pytest.approx(9.006, abs=0.01)
    assert better.phone == "+375291234567"  # the customer stays the customer


def test_a_cdr_leg_to_an_outside_number_with_no_phone_before_it_is_nobodys() -> None:
    at = datetime.fromtimestamp(EPOCH, UTC)
    call = f"{EPOCH}.7"
    (_, leg, out) = forward_cdr(at, call)
    event = from_cdr([leg, out])  # the DID routed straight to an outside number: no manager's phone rang
    assert event.answered_by is None and event.forwarded_to is None


def blind_transfer_cdr(at: datetime, call: str) -> list[str]:
    """What the CDR says of it: the trunk's dial to 150 answered (2-5 s), then its dial to 151 (7-21 s)."""
    return [
        cdr_line("+375291234567", "375173880000", "from-trunk", "PJSIP/provider-00000001", "PJSIP/150-00000002",
                 "Dial", at, at + timedelta(seconds=2), at + timedelta(seconds=5), "ANSWERED", call, linkedid=call,
                 sequence=1),
        cdr_line("+375291234567", "151", "from-internal", "PJSIP/provider-00000001", "PJSIP/151-00000003", "Dial",
                 at + timedelta(seconds=5), at + timedelta(seconds=7), at + timedelta(seconds=21), "ANSWERED", call,
                 linkedid=call, sequence=2),
    ]  # fmt: skip


def test_the_cel_gives_each_manager_of_a_transferred_call_his_talk() -> None:
    script, call = cel_calls.blind_transfer(EPOCH)
    event = from_cdr(blind_transfer_cdr(datetime.fromtimestamp(EPOCH, UTC), call))
    assert event.answered_by == "151" and "legs" not in (event.extra or {})  # the CDR has no talk per person
    better = cel.refine(event, cel.by_call(cel.parse_lines(script.csv_lines()))[call], RULES)
    assert better.extra is not None and better.extra["transfers"] == 1
    assert better.extra["legs"] == [
        {"extension": "150", "talk_seconds": 3.0},
        {"extension": "151", "talk_seconds": 14.0},
    ]


def test_a_missed_call_stays_missed_with_every_phone_that_rang() -> None:
    script, call = cel_calls.missed(EPOCH)
    at = datetime.fromtimestamp(EPOCH, UTC)
    line = cdr_line("+375291234567", "375173880000", "from-trunk", "PJSIP/provider-00000001", "PJSIP/151-00000003",
                    "Dial", at, None, at + timedelta(seconds=20), "NO ANSWER", call, linkedid=call)  # fmt: skip
    better = cel.refine(from_cdr([line]), cel.by_call(cel.parse_lines(script.csv_lines()))[call], RULES)
    assert better.answered_by is None and better.result == "no_answer"
    assert better.extensions == ("150", "151")


CEL_PGSQL = """
CREATE TABLE cel (
    id serial, eventtype varchar(30) NOT NULL, eventtime timestamp NOT NULL, userdeftype varchar(255) NOT NULL,
    cid_name varchar(80) NOT NULL, cid_num varchar(80) NOT NULL, cid_ani varchar(80) NOT NULL,
    cid_rdnis varchar(80) NOT NULL, cid_dnid varchar(80) NOT NULL, exten varchar(80) NOT NULL,
    context varchar(80) NOT NULL, channame varchar(80) NOT NULL, appname varchar(80) NOT NULL,
    appdata varchar(80) NOT NULL, amaflags int NOT NULL, accountcode varchar(20) NOT NULL,
    peeraccount varchar(20) NOT NULL, uniqueid varchar(150) NOT NULL, linkedid varchar(150) NOT NULL,
    userfield varchar(255) NOT NULL, peer varchar(80) NOT NULL, extra varchar(512)
)
"""  # cel_pgsql's table (contrib/scripts), times local to the PBX


def local_rows(script: cel_calls.CelScript, shift: timedelta) -> list[tuple[object, ...]]:
    """The script's rows as (eventtype, eventtime, channame, uniqueid, linkedid, peer, extra), times naive."""
    return [
        (
            r["eventtype"],
            datetime.fromtimestamp(float(r["eventtime"]), UTC).replace(tzinfo=None) + shift,
            r["channame"],
            r["uniqueid"],
            r["linkedid"],
            r["peer"],
            r["extra"],
        )
        for r in script.rows
    ]


async def insert_cel(pool: Pool, script: cel_calls.CelScript, shift: timedelta = timedelta(0)) -> None:
    for values in local_rows(script, shift):
        await pool.execute(
            "INSERT INTO cel (eventtype, eventtime, channame, uniqueid, linkedid, peer, extra, userdeftype, cid_name,"
            " cid_num, cid_ani, cid_rdnis, cid_dnid, exten, context, appname, appdata, amaflags, accountcode,"
            " peeraccount, userfield) VALUES ($1, $2, $3, $4, $5, $6, $7, '', '', '', '', '', '', '', '', '', '', 3,"
            " '', '', '')",
            *values,
        )


async def test_the_cel_table_beside_a_cdr_pgsql_cdr(pool: Pool, db_dsn: str) -> None:
    epoch = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())
    script, call = cel_calls.pickup(epoch)
    await pool.execute(CEL_PGSQL)
    await insert_cel(pool, script, timedelta(hours=3))  # a PBX in UTC+3
    pbx = PbxSection("office", "0001", "agent", "secret", cdr_db=db_dsn)
    events = await read_cel(pbx, datetime.now(UTC) - timedelta(hours=1))
    got = cel.account(cel.by_call(events)[call], RULES)
    assert got.last_talker == "151" and got.pickers == ["151"]
    assert got.legs["151"] == pytest.approx(6.0, abs=0.01)


FREEPBX_CEL = """
CREATE TABLE cel (
    id int(11) NOT NULL AUTO_INCREMENT, eventtype varchar(30) NOT NULL, eventtime datetime NOT NULL,
    cid_name varchar(80) NOT NULL, cid_num varchar(80) NOT NULL, cid_ani varchar(80) NOT NULL,
    cid_rdnis varchar(80) NOT NULL, cid_dnid varchar(80) NOT NULL, exten varchar(80) NOT NULL,
    context varchar(80) NOT NULL, channame varchar(80) NOT NULL, appname varchar(80) NOT NULL,
    appdata varchar(80) NOT NULL, amaflags int(11) NOT NULL, accountcode varchar(20) NOT NULL,
    peeraccount varchar(80) NOT NULL, uniqueid varchar(150) NOT NULL, linkedid varchar(150) NOT NULL,
    userfield varchar(255) NOT NULL, peer varchar(80) NOT NULL, extra varchar(512) NOT NULL DEFAULT '',
    PRIMARY KEY (id), KEY uniqueid_index (uniqueid), KEY linkedid_index (linkedid)
)
"""  # asteriskcdrdb.cel as FreePBX creates it: whole seconds


async def test_freepbx_cel_in_mysql() -> None:
    epoch = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())
    script, call = cel_calls.blind_transfer(epoch)
    async with mariadb() as port:
        conn = await aiomysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute("CREATE DATABASE asteriskcdrdb")
                await cursor.execute("USE asteriskcdrdb")
                await cursor.execute(FREEPBX_CEL)
                for values in local_rows(script, timedelta(0)):
                    await cursor.execute(
                        "INSERT INTO cel (eventtype, eventtime, channame, uniqueid, linkedid, peer, extra, cid_name,"
                        " cid_num, cid_ani, cid_rdnis, cid_dnid, exten, context, appname, appdata, amaflags,"
                        " accountcode, peeraccount, userfield) VALUES (%s, %s, %s, %s, %s,"
                        " %s, %s, '', '', '', '', '', '', '', '', '', 3, '', '', '')",
                        values,
                    )
        finally:
            conn.close()
        pbx = PbxSection("office", "0001", "agent", "secret", cdr_db=f"mysql://root@127.0.0.1:{port}/asteriskcdrdb")
        events = await read_cel(pbx, datetime.now(UTC) - timedelta(hours=1))
    got = cel.account(cel.by_call(events)[call], RULES)
    assert got.transfers == 1 and got.last_talker == "151"
    assert got.legs == {"150": pytest.approx(3.0, abs=1), "151": pytest.approx(14.0, abs=1)}  # datetime: seconds


async def test_cel_custom_csv_named_in_the_config(tmp_path: Path) -> None:
    """cel_custom's Master.csv, a day of older calls before the one wanted: read back to the window only."""
    now = int(datetime.now(UTC).timestamp())
    old = [line for n in range(300) for line in cel_calls.blind_transfer(now - 86400 + n * 60)[0].csv_lines()]
    script, call = cel_calls.pickup(now - 300)
    path = tmp_path / "Master.csv"
    path.write_text("".join(old + script.csv_lines()))
    pbx = PbxSection("office", "0001", "agent", "secret", cel_csv=RecordingsSource("local", str(path)))
    events = await read_cel(pbx, datetime.now(UTC) - timedelta(hours=1))
    assert cel.account(cel.by_call(events)[call], RULES).last_talker == "151"
    assert len(events) < len(old)  # it stopped reading well before the start of the file
    with pytest.raises(CelUnavailable, match="cannot read the CEL"):
        await read_cel(replace(pbx, cel_csv=RecordingsSource("local", str(tmp_path / "none.csv"))), datetime.now(UTC))


def test_cel_settings_in_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    base = '[[pbx]]\nname = "office"\nenterprise = "0001"\nusername = "agent"\nsecret = "s"\n'
    cfg.write_text(base + 'cel_csv = "cel.csv"\ncel_csv_fields = ["EventType", "EventTime"]\ncel_db_table = ""\n')
    (pbx,) = load_config(cfg).pbx
    assert pbx.cel_source == RecordingsSource("local", str(tmp_path / "cel.csv"))
    assert pbx.cel_csv_fields == ("EventType", "EventTime") and pbx.cel_db_table == ""
    cfg.write_text(base)
    (pbx,) = load_config(cfg).pbx
    assert pbx.cel_source == RecordingsSource("local", "/var/log/asterisk/cel-custom/Master.csv")
    assert pbx.cel_db_table == "cel"
    cfg.write_text(base + 'cel_db_table = "cel; drop"\n')
    with pytest.raises(ConfigError, match="cel_db_table"):
        load_config(cfg)
