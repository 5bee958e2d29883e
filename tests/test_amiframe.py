"""The byte-level AMI framer: framing, banners, odd but legal input, and garbage."""

from __future__ import annotations

import logging

import pytest

from agent.ingest.frame import AmiFrameParser, AmiMessage
from tests.recordings import NAMES, ami

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
LOGIN = b"Response: Success\r\nActionID: a-1\r\nMessage: Authentication accepted\r\n\r\n"
NAME = "Иван Петров"
EVENT = (
    "Event: NewCallerid\r\nChannel: PJSIP/150-00000001\r\nCallerIDNum: 150\r\n"
    f"CallerIDName: {NAME}\r\nAccountCode: \r\nUniqueid: 1.1\r\n\r\n"
).encode()


def feed_all(parser: AmiFrameParser, *chunks: bytes) -> list[AmiMessage]:
    out: list[AmiMessage] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


def test_banner_then_messages() -> None:
    p = AmiFrameParser()
    msgs = p.feed(BANNER + LOGIN + EVENT)
    assert msgs[0].is_banner and p.banner == "Asterisk Call Manager/11.0.0"
    assert msgs[1] == {"Response": "Success", "ActionID": "a-1", "Message": "Authentication accepted"}
    assert msgs[2]["CallerIDName"] == NAME
    assert msgs[2]["AccountCode"] == ""
    assert isinstance(msgs[2], AmiMessage) and not msgs[2].is_banner


def test_banner_alone_surfaces_before_any_message() -> None:
    p = AmiFrameParser()
    assert [m.is_banner for m in p.feed(BANNER)] == [True]
    assert p.feed(LOGIN)[0]["Response"] == "Success"


def test_new_banner_mid_stream_means_restart(caplog: pytest.LogCaptureFixture) -> None:
    p = AmiFrameParser()
    with caplog.at_level(logging.WARNING):
        msgs = p.feed(BANNER + LOGIN + BANNER + LOGIN)
    assert [m.is_banner for m in msgs] == [True, False, True, False]
    assert p.banners == 2 and "restarted" in caplog.text
    p.reset()
    p.feed(BANNER)
    assert p.banners == 1


@pytest.mark.parametrize("cut", range(1, len(EVENT)))
def test_utf8_name_split_anywhere(cut: int) -> None:
    p = AmiFrameParser()
    msgs = feed_all(p, EVENT[:cut], EVENT[cut:])
    assert len(msgs) == 1 and msgs[0]["CallerIDName"] == NAME
    assert p.malformed == 0


def test_lf_only_and_mixed_line_ends() -> None:
    p = AmiFrameParser()
    lf = EVENT.replace(b"\r\n", b"\n")
    msgs = p.feed(lf + b"Event: A\r\nX: 1\n\r\n" + b"Event: B\nY: 2\n\n")
    assert [m["Event"] for m in msgs] == ["NewCallerid", "A", "B"]
    assert msgs[1]["X"] == "1" and p.malformed == 0


def test_repeated_keys_first_wins_all_kept() -> None:
    p = AmiFrameParser()
    (msg,) = p.feed(b"Response: Success\r\nVariable: A=1\r\nVariable: B=2\r\nChanVariable: C=3\r\nVariable: D=\r\n\r\n")
    assert msg["Variable"] == "A=1"
    assert msg.getall("Variable") == ["A=1", "B=2", "D="]
    assert msg.getall("ChanVariable") == ["C=3"] and msg.getall("Nope") == []


def test_key_without_space_and_value_with_colons() -> None:
    (msg,) = AmiFrameParser().feed(b"Event: X\r\nEmpty:\r\nData: a: b: c\r\n\r\n")
    assert msg == {"Event": "X", "Empty": "", "Data": "a: b: c"}


def test_line_without_colon_is_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    p = AmiFrameParser()
    with caplog.at_level(logging.WARNING):
        msgs = p.feed(b"Event: X\r\nthis line has no colon\r\nA: 1\r\n\r\n" + LOGIN)
    assert msgs[0] == {"Event": "X", "A": "1"} and msgs[1]["Response"] == "Success"
    assert p.malformed == 1 and "without 'Key: value'" in caplog.text


def test_binary_junk_frame_is_skipped() -> None:
    p = AmiFrameParser()
    junk = bytes(range(256)).replace(b"\n", b"").replace(b"\r", b"").replace(b":", b"")
    msgs = p.feed(LOGIN + junk + b"\r\n\r\n" + b"\xff\xfe: \xc3\r\n\r\n" + EVENT)
    assert [m.get("Response") or m.get("Event") for m in msgs if "\ufffd" not in "".join(m)] == [
        "Success",
        "NewCallerid",
    ]
    assert msgs[-1]["CallerIDName"] == NAME
    assert p.malformed >= 2


def test_megabyte_line_without_terminator_then_recovery() -> None:
    p = AmiFrameParser(max_frame=64 * 1024)
    assert p.feed(LOGIN)[0]["Response"] == "Success"
    for _ in range(16):
        assert p.feed(b"x" * 65536) == []
    assert p.malformed == 1
    # the runaway frame ends at the next empty line; everything after it parses again
    msgs = p.feed(b"tail\r\n\r\n" + EVENT)
    assert [m["Event"] for m in msgs] == ["NewCallerid"]


def test_frame_over_the_cap_is_skipped_in_one_read() -> None:
    p = AmiFrameParser(max_frame=4096)
    big = b"Event: Huge\r\n" + b"".join(b"K%d: %s\r\n" % (i, b"v" * 90) for i in range(100)) + b"\r\n"
    msgs = p.feed(LOGIN + big + EVENT)
    assert [m.get("Event", m.get("Response")) for m in msgs] == ["Success", "NewCallerid"]
    assert p.malformed == 1


def test_frame_cut_by_disconnect_is_dropped_by_reset() -> None:
    p = AmiFrameParser()
    assert p.feed(LOGIN + EVENT[:40]) != []
    p.reset()
    assert p.malformed == 1
    msgs = p.feed(BANNER + LOGIN)
    assert [m.is_banner for m in msgs] == [True, False]
    assert msgs[1]["Response"] == "Success"


def test_cr_and_lf_split_across_reads() -> None:
    p = AmiFrameParser()
    data = LOGIN + EVENT
    out = feed_all(p, *(data[i : i + 1] for i in range(len(data))))
    assert [m.get("Response") or m["Event"] for m in out] == ["Success", "NewCallerid"]


@pytest.mark.parametrize("name", NAMES)
def test_recording_byte_by_byte_equals_one_read(name: str) -> None:
    data = ami(name)
    whole = AmiFrameParser().feed(data)
    p = AmiFrameParser()
    step = feed_all(p, *(data[i : i + 7] for i in range(0, len(data), 7)))
    assert whole == step
    assert whole[0].is_banner and p.malformed == 0
    assert whole[-1]["Response"] == "Goodbye"
    assert len(whole) - 1 == data.count(b"\r\n\r\n")
