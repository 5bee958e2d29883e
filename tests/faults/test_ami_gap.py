"""The AMI link is cut in the middle of a burst and the calls of those seconds are never seen live: with only
the default configuration (no cdr_csv set; the PBX's CDR at its standard place), each of them still reaches
the CRM, once. Real TCP to the fake Asterisk, real PostgreSQL, the fake RetailCRM counting."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import sections
from agent.config.sections import Config
from agent.repair import catchup
from agent.store.database import Pool
from tests import recordings
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm, running
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_ami_link import pbx_for
from tests.test_backfill_on_connect import call_rows
from tests.waiting import until

CALLS = 30
SEEN, GAP = 15, 10  # calls 0-14 live, 15-24 while the link is cut (only the CDR has them), 25-29 live again


async def test_calls_during_an_ami_cut_reach_the_crm_once_from_the_default_cdr(
    pool: Pool, db_dsn: str, tmp_path: Path, make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    standard = tmp_path / "Master.csv"
    monkeypatch.setattr(sections, "DEFAULT_CDR_CSV", str(standard))  # where cdr_csv writes by default
    monkeypatch.setattr(catchup, "SETTLE", timedelta(seconds=0.2))
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=25)  # the gap's calls: 20 s, ended 5 s ago
    epoch = int(began.timestamp())  # their ids, as the PBX made them then (the CDR's zone is read from them)
    ids = recordings.burst_call_ids(CALLS, ENTERPRISE, epoch=epoch)
    stream = recordings.burst(CALLS, epoch=epoch)
    cut = len(recordings.burst(SEEN, epoch=epoch))
    skipped = len(recordings.burst(SEEN + GAP, epoch=epoch)) - cut
    async with (
        FakeRetailCrm(api_key=API_KEY) as crm,
        FakeAmi(stream, speed=math.inf, drop_at=cut, skip_while_down=skipped, pause_at=cut) as ami,
    ):
        config = replace(make_config(db_dsn), pbx=(pbx_for(ami),))
        assert config.pbx[0].cdr_csv is None
        await configure_retailcrm(pool, config.agent.state_dir, crm, popup_in=False, popup_hangup=False)
        async with running(config) as agent:
            await ami.wait_paused(within=20)  # the first 15 calls are through
            await ami.refuse_connections("close", drop_existing=False)  # once cut, the link stays down a while
            ami.unpause()
            await ami.wait_for(lambda: ami.drops == 1, within=20)
            # the PBX went on; its CDR has every call that ended before the link comes back, the gap's among them
            # (and those in flight when the link was cut, which the agent may have lost with the connection)
            standard.write_text("".join(call_rows(began, n, linkedid=ids[n]) for n in range(SEEN + GAP)))
            await ami.accept_connections()
            await ami.wait_finished(within=20)

            async def all_delivered() -> bool:
                left = await pool.fetchval("SELECT count(*) FROM deliveries WHERE status <> 'done'")
                return left == 0 and len(crm.calls) == CALLS

            await until(all_delivered, within=30, every=0.1)
            report = (await agent.health.report())["components"]["pbx:office"]["backfill"]
            assert report["calls"] >= GAP and report["error"] is None
    assert sorted(crm.calls) == sorted(ids)
    # a call the link was following when it was cut ends as the CDR says (answered here), not as the reconcile
    # guessed (no answer): the live ones were busy, the CDR's answered
    assert {crm.calls[i]["result"] for i in ids} == {"busy", "answered"}
    sent = sum(len(batch) for batch in crm.uploads)
    assert sent == CALLS and crm.duplicates_seen == 0
