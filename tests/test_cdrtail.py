"""The backward tail reader of Master.csv: the same rows as a full read, and it stops early."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agent.config.sections import PbxSection, RecordingsSource, SshSection
from agent.repair import cdr
from agent.repair.cdrtail import CdrUnreadable, ended_before, read_tail, tail_lines
from tests.fakes.ssh import FakeSshServer, new_key
from tests.test_backfill import T0, cdr_line, uid

ROWS = 5000  # one call a minute, about 3.5 days


def big_csv() -> str:
    lines = []
    for i in range(ROWS):
        start = T0 + timedelta(minutes=i)
        name = "Пётр Иванов" if i % 7 == 0 else "Ivan"  # multi-byte names cut across chunk borders
        lines.append(
            cdr_line(
                "+375291234567",
                "375173880000",
                "from-trunk",
                f"PJSIP/provider-{i:08x}",
                f"PJSIP/150-{i:08x}",
                "Dial",
                start,
                start + timedelta(seconds=5),
                start + timedelta(seconds=40),
                "ANSWERED",
                uid(start, i),
                clid=f'"{name}" <+375291234567>',
            )
        )
    return "".join(lines)


class Counting:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = 0

    async def __call__(self, offset: int, size: int) -> bytes:
        chunk = self.data[offset : offset + size]
        self.read += len(chunk)
        return chunk


@pytest.mark.parametrize("chunk", [1000, 4096, 65536])
async def test_the_whole_tail_is_the_whole_file(chunk: int) -> None:
    data = big_csv().encode()
    reader = Counting(data)
    lines = await tail_lines(reader, len(data), lambda _: False, chunk=chunk)
    assert lines == data.decode().splitlines(keepends=True)
    assert reader.read == len(data)


async def test_it_stops_once_a_chunk_is_older_than_needed() -> None:
    data = big_csv().encode()
    full = cdr.parse(data.decode().splitlines()).rows
    cutoff = T0 + timedelta(minutes=ROWS - 120)  # the last two hours
    reader = Counting(data)
    lines = await tail_lines(reader, len(data), ended_before(cutoff), chunk=8192)
    rows = cdr.parse(lines).rows
    assert [r for r in full if r.end >= cutoff] == [r for r in rows if r.end >= cutoff]
    assert rows[-1] == full[-1] and len(rows) < 200
    assert reader.read < len(data) // 20  # a few chunks, not the file


async def test_a_line_still_being_written_is_left_out() -> None:
    data = big_csv().encode()
    half = data + data.splitlines(keepends=True)[0][:50]  # cdr_csv is in the middle of a row
    lines = await tail_lines(Counting(half), len(half), lambda _: False, chunk=4096)
    assert lines == data.decode().splitlines(keepends=True)


async def test_a_local_file_and_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_text(big_csv())
    pbx = PbxSection(name="office", enterprise="100", username="agent", secret="s")
    lines = await read_tail(RecordingsSource("local", str(path)), pbx, ended_before(T0 + timedelta(minutes=ROWS - 10)))
    assert 10 <= len(lines) < 2000 and lines[-1] == path.read_text().splitlines(keepends=True)[-1]
    with pytest.raises(CdrUnreadable, match=r"cannot read the CDR .*nope\.csv"):
        await read_tail(RecordingsSource("local", str(tmp_path / "nope.csv")), pbx, lambda _: False)


async def test_over_sftp_the_same_tail(tmp_path: Path) -> None:
    remote = tmp_path / "pbx" / "Master.csv"
    remote.parent.mkdir()
    remote.write_text(big_csv())
    enough = ended_before(T0 + timedelta(minutes=ROWS - 300))
    async with FakeSshServer(new_key()) as server:
        (tmp_path / "keys").mkdir()
        key_file, known_hosts = server.write_client_files(tmp_path / "keys")
        ssh = SshSection(
            host="127.0.0.1", port=server.port, username=server.username, key_file=key_file, known_hosts=known_hosts
        )
        pbx = PbxSection(name="office", enterprise="100", username="agent", secret="s", ssh=ssh)
        over_sftp = await read_tail(RecordingsSource("sftp", str(remote)), pbx, enough, chunk=16384)
        with pytest.raises(CdrUnreadable, match=r"cannot read the CDR sftp:.*nope"):
            await read_tail(RecordingsSource("sftp", str(tmp_path / "nope")), pbx, enough)
    local = await read_tail(RecordingsSource("local", str(remote)), pbx, enough, chunk=16384)
    assert over_sftp == local and 300 <= len(local) < 1000
