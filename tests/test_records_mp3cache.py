"""The MP3 cache is bounded: least recently used MP3s go first, a cache hit counts as use, the MP3 just made
and the ones being written stay, leftovers of a dead transcode go."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from agent.config.sections import Config
from agent.web.recordings import RecordLinks
from agent.web.transcode import sweep
from tests.test_records_sources import SECRET, fetch, make_wav, serving, spool  # noqa: F401 (fixture)

NOW = 1_800_000_000.0


def cached(directory: Path, name: str, size: int, age: float) -> Path:
    path = directory / name
    path.write_bytes(b"\xff" * size)
    os.utime(path, (NOW - age, NOW - age))
    return path


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_over_the_cap_the_least_recently_used_go_until_it_fits(tmp_path: Path) -> None:
    for name, age in (("a.mp3", 400), ("b.mp3", 300), ("c.mp3", 200), ("d.mp3", 100)):
        cached(tmp_path, name, 100, age)
    cached(tmp_path, "notes.txt", 10_000, 1000)  # not ours
    assert sweep(tmp_path, 400, part_max_age=300, now=NOW) == []  # fits: nothing to do
    assert sweep(tmp_path, 250, part_max_age=300, now=NOW) == ["a.mp3", "b.mp3"]
    assert names(tmp_path) == {"c.mp3", "d.mp3", "notes.txt"}
    assert sweep(tmp_path, 250, part_max_age=300, now=NOW) == []
    assert sweep(tmp_path / "never-made", 1, part_max_age=300, now=NOW) == []


def test_the_mp3_just_made_and_the_ones_being_written_stay(tmp_path: Path) -> None:
    cached(tmp_path, "old.mp3", 100, 500)
    new = cached(tmp_path, "new.mp3", 1000, 0)  # alone over the cap
    cached(tmp_path, "writing.123.part.mp3", 1000, 299)  # ffmpeg at work (it writes as it goes)
    cached(tmp_path, "dead.99.part.mp3", 10, 301)  # the agent died mid-transcode
    assert sorted(sweep(tmp_path, 500, part_max_age=300, keep=new, now=NOW)) == ["dead.99.part.mp3", "old.mp3"]
    assert names(tmp_path) == {new.name, "writing.123.part.mp3"}


async def test_the_agent_sweeps_at_start(db_dsn: str, make_config: Callable[..., Config], tmp_path: Path) -> None:
    from tests.rc_agent import started

    cache = tmp_path / "state" / "records-mp3"  # make_config's state_dir
    cache.mkdir(parents=True)
    now = time.time()
    for name, age in (("older.mp3", 200), ("newer.mp3", 100)):
        path = cache / name
        path.write_bytes(b"\xff" * 1024 * 1024)
        os.utime(path, (now - age, now - age))
    async with started(make_config, db_dsn, mp3_cache_mb=1):
        assert names(cache) == {"newer.mp3"}


async def test_a_recently_played_mp3_outlives_an_older_one(spool: Path, tmp_path: Path) -> None:  # noqa: F811
    cache = tmp_path / "cache"
    links = RecordLinks("https://agent.example.com", SECRET, spool, cache_dir=cache, ffmpeg=None)
    wavs = [spool / f"2026/11/out-{n}.wav" for n in (1, 2, 3)]
    for wav in wavs:
        make_wav(wav)  # the same sound: MP3s of the same size
    made: list[Path] = []
    async with serving(links) as base:
        for wav in wavs[:2]:
            before = set(cache.glob("*.mp3")) if cache.exists() else set()
            assert (await fetch(base, links.record_url(str(wav), fmt="mp3")))[0] == 200
            (path,) = set(cache.glob("*.mp3")) - before
            made.append(path)
        for path, age in zip(made, (200, 100), strict=True):  # the first played longest ago ...
            os.utime(path, (time.time() - age, time.time() - age))
        assert (await fetch(base, links.record_url(str(wavs[0]), fmt="mp3")))[0] == 200  # ... and now again
        assert links.mp3.made == 2
        size = made[0].stat().st_size
        links.mp3.max_bytes = 2 * size + size // 2  # room for two
        assert (await fetch(base, links.record_url(str(wavs[2]), fmt="mp3")))[0] == 200
        assert links.mp3.made == 3
        assert made[0].exists() and not made[1].exists()
        assert len(list(cache.glob("*.mp3"))) == 2
