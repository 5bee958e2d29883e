"""The fake RetailCRM in a process of its own (benchmarks): `python bench/fake_crm_process.py KEY PORT OUT`.

Serves until SIGTERM, then writes OUT: one line per uploaded call, `<externalId> <CLOCK_MONOTONIC at arrival>`
(the monotonic clock is one clock for every process on Linux, so the caller can subtract its own stamps).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.retailcrm import FakeRetailCrm


async def main(key: str, port: int, out: Path) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    fake = FakeRetailCrm(api_key=key)
    await fake.start(port)
    print("ready", flush=True)
    await stop.wait()
    lines = [
        f"{call['externalId']} {request.at}"
        for request in fake.requests_to("/telephony/calls/upload")
        for call in request.json_field("calls")
    ]
    await asyncio.to_thread(out.write_text, "\n".join(lines) + "\n")
    await fake.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
