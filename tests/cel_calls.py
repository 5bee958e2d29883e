"""CEL records of a few calls, in the shape main/cel.c writes them (Asterisk 22): which channel each event is
reported on and what its `extra` JSON holds (BRIDGE_ENTER/EXIT `bridge_id`; PICKUP on the picked-up channel,
`pickup_channel`; FORWARD on the calling channel, `forward`; BLINDTRANSFER on the transferer, ATTENDEDTRANSFER
on the transferee's side). Channel names and timings follow the SIP office's recordings (p_m_pickup,
p_t_forward_no_answer, g_blind_transfer, h_attended_transfer); no recording holds CEL (it was disabled there)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from agent.repair.cel import SAMPLE_FIELDS


@dataclass
class Channel:
    name: str
    uniqueid: str
    linkedid: str


@dataclass
class CelScript:
    epoch: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def channel(self, name: str, after: float, n: int, linkedid: str | None = None) -> Channel:
        uniqueid = f"{self.epoch + int(after)}.{n}"
        return Channel(name, uniqueid, linkedid or uniqueid)

    def add(self, at: float, kind: str, chan: Channel, peer: str = "", **extra: str) -> None:
        self.rows.append(
            {
                "eventtype": kind,
                "eventtime": f"{self.epoch + at:.6f}",
                "channame": chan.name,
                "uniqueid": chan.uniqueid,
                "linkedid": chan.linkedid,
                "peer": peer,
                "extra": json.dumps(extra) if extra else "",
            }
        )

    def csv_lines(self) -> list[str]:
        """As cel_custom's sample mapping writes them (every field quoted)."""
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for row in self.rows:
            writer.writerow([row.get(name, "") for name in SAMPLE_FIELDS])
        return out.getvalue().splitlines(keepends=True)


def pickup(epoch: int) -> tuple[CelScript, str]:
    """150 rings; 151 dials **150 (a call of its own at first) and picks the customer up; 6 s of talk."""
    s = CelScript(epoch)
    trunk = s.channel("PJSIP/provider-00000013", 0, 19)
    p150 = s.channel("PJSIP/150-00000014", 0, 20, trunk.linkedid)
    p151 = s.channel("PJSIP/151-00000015", 3, 21)
    s.add(0.000, "CHAN_START", trunk)
    s.add(0.001, "APP_START", trunk)
    s.add(0.002, "CHAN_START", p150)
    s.add(3.116, "CHAN_START", p151)
    s.add(3.117, "ANSWER", p151)
    s.add(3.617, "PICKUP", p150, pickup_channel=p151.name, pickup_channel_uniqueid=p151.uniqueid)
    s.add(3.617, "HANGUP", p150)
    s.add(3.617, "CHAN_END", p150)
    s.add(3.618, "ANSWER", trunk)
    s.add(3.618, "BRIDGE_ENTER", p151, bridge_id="b1", bridge_technology="simple_bridge")
    p151.linkedid = trunk.linkedid  # the picker joins the customer's call
    s.add(3.619, "BRIDGE_ENTER", trunk, p151.name, bridge_id="b1", bridge_technology="simple_bridge")
    s.add(9.620, "BRIDGE_EXIT", trunk, p151.name, bridge_id="b1", bridge_technology="simple_bridge")
    s.add(9.620, "HANGUP", trunk)
    s.add(9.621, "BRIDGE_EXIT", p151, bridge_id="b1", bridge_technology="simple_bridge")
    s.add(9.622, "HANGUP", p151)
    s.add(9.623, "LINKEDID_END", p151)
    return s, trunk.linkedid


def forward(epoch: int) -> tuple[CelScript, str]:
    """150 rings 4 s and forwards (302) to his mobile through a Local channel and the trunk; 9 s of talk."""
    s = CelScript(epoch)
    trunk = s.channel("PJSIP/provider-00000007", 0, 7)
    p150 = s.channel("PJSIP/150-00000008", 0, 8, trunk.linkedid)
    one = s.channel("Local/+375296660150@from-internal-00000000;1", 4, 9, trunk.linkedid)
    two = s.channel("Local/+375296660150@from-internal-00000000;2", 4, 10, trunk.linkedid)
    out = s.channel("PJSIP/provider-00000009", 4, 11, trunk.linkedid)
    s.add(0.000, "CHAN_START", trunk)
    s.add(0.003, "CHAN_START", p150)
    s.add(4.007, "CHAN_START", one)
    s.add(4.007, "CHAN_START", two)
    s.add(4.007, "FORWARD", trunk, forward="+375296660150")
    s.add(4.008, "HANGUP", p150)
    s.add(4.010, "CHAN_START", out)
    s.add(7.014, "ANSWER", out)
    s.add(7.014, "BRIDGE_ENTER", two, bridge_id="b2")
    s.add(7.014, "BRIDGE_ENTER", out, two.name, bridge_id="b2")
    s.add(7.015, "ANSWER", trunk)
    s.add(7.015, "BRIDGE_ENTER", trunk, bridge_id="b1")
    s.add(7.015, "BRIDGE_ENTER", one, trunk.name, bridge_id="b1")
    s.add(16.021, "BRIDGE_EXIT", trunk, one.name, bridge_id="b1")
    s.add(16.021, "HANGUP", trunk)
    s.add(16.022, "BRIDGE_EXIT", one, bridge_id="b1")
    s.add(16.023, "BRIDGE_EXIT", out, two.name, bridge_id="b2")
    s.add(16.024, "LINKEDID_END", out)
    return s, trunk.linkedid


def blind_transfer(epoch: int) -> tuple[CelScript, str]:
    """150 answers after 2 s, talks 3 s and blind-transfers to 151, who answers after 2 s and talks 14 s."""
    s = CelScript(epoch)
    trunk = s.channel("PJSIP/provider-00000001", 0, 1)
    p150 = s.channel("PJSIP/150-00000002", 0, 2, trunk.linkedid)
    s.add(0.0, "CHAN_START", trunk)
    s.add(0.01, "CHAN_START", p150)
    s.add(2.0, "ANSWER", p150)
    s.add(2.0, "BRIDGE_ENTER", trunk, bridge_id="b1")
    s.add(2.0, "BRIDGE_ENTER", p150, trunk.name, bridge_id="b1")
    s.add(5.0, "BLINDTRANSFER", p150, extension="151", context="from-internal", bridge_id="b1")
    s.add(5.0, "BRIDGE_EXIT", trunk, p150.name, bridge_id="b1")
    s.add(5.0, "BRIDGE_EXIT", p150, bridge_id="b1")
    s.add(5.0, "HANGUP", p150)
    p151 = s.channel("PJSIP/151-00000003", 5, 3, trunk.linkedid)
    s.add(5.01, "CHAN_START", p151)
    s.add(7.0, "ANSWER", p151)
    s.add(7.0, "BRIDGE_ENTER", trunk, bridge_id="b2")
    s.add(7.0, "BRIDGE_ENTER", p151, trunk.name, bridge_id="b2")
    s.add(21.0, "BRIDGE_EXIT", trunk, p151.name, bridge_id="b2")
    s.add(21.0, "BRIDGE_EXIT", p151, bridge_id="b2")
    s.add(21.0, "LINKEDID_END", trunk)
    return s, trunk.linkedid


def attended_transfer(epoch: int) -> tuple[CelScript, str]:
    """150 answers at 2 s; at 8 s consults 152 (a call of its own), who answers at 10 s; at 13 s 150
    completes the transfer: 152 joins the customer's bridge and talks until 30 s."""
    s = CelScript(epoch)
    trunk = s.channel("PJSIP/provider-00000001", 0, 1)
    p150 = s.channel("PJSIP/150-00000002", 0, 2, trunk.linkedid)
    s.add(0.0, "CHAN_START", trunk)
    s.add(0.01, "CHAN_START", p150)
    s.add(2.0, "ANSWER", p150)
    s.add(2.0, "BRIDGE_ENTER", trunk, bridge_id="b1")
    s.add(2.0, "BRIDGE_ENTER", p150, trunk.name, bridge_id="b1")
    consult = s.channel("PJSIP/150-00000003", 8, 3)
    p152 = s.channel("PJSIP/152-00000004", 8, 4, consult.linkedid)
    s.add(8.0, "CHAN_START", consult)
    s.add(8.01, "CHAN_START", p152)
    s.add(10.0, "ANSWER", p152)
    s.add(10.0, "BRIDGE_ENTER", consult, bridge_id="b2")
    s.add(10.0, "BRIDGE_ENTER", p152, consult.name, bridge_id="b2")
    s.add(
        13.0,
        "ATTENDEDTRANSFER",
        p150,
        bridge1_id="b1",
        channel2_name=consult.name,
        channel2_uniqueid=consult.uniqueid,
        bridge2_id="b2",
        transferee_channel_name=trunk.name,
        transferee_channel_uniqueid=trunk.uniqueid,
        transfer_target_channel_name=p152.name,
        transfer_target_channel_uniqueid=p152.uniqueid,
    )
    s.add(13.0, "BRIDGE_EXIT", p150, trunk.name, bridge_id="b1")
    s.add(13.0, "BRIDGE_EXIT", consult, p152.name, bridge_id="b2")
    s.add(13.0, "BRIDGE_EXIT", p152, bridge_id="b2")
    p152.linkedid = trunk.linkedid
    s.add(13.0, "BRIDGE_ENTER", p152, trunk.name, bridge_id="b1")
    s.add(30.0, "BRIDGE_EXIT", trunk, p152.name, bridge_id="b1")
    s.add(30.0, "BRIDGE_EXIT", p152, bridge_id="b1")
    s.add(30.0, "LINKEDID_END", trunk)
    return s, trunk.linkedid


def missed(epoch: int) -> tuple[CelScript, str]:
    """A ring group: 150 and 151 ring 20 s, nobody answers."""
    s = CelScript(epoch)
    trunk = s.channel("PJSIP/provider-00000001", 0, 1)
    s.add(0.0, "CHAN_START", trunk)
    for n, ext in ((2, "150"), (3, "151")):
        s.add(0.01, "CHAN_START", s.channel(f"PJSIP/{ext}-0000000{n}", 0, n, trunk.linkedid))
    s.add(20.0, "HANGUP", trunk)
    s.add(20.0, "LINKEDID_END", trunk)
    return s, trunk.linkedid
