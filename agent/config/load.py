"""agent.toml: reading and validating the file into agent.config.sections, every problem named by file, table and key.

Validation collects every problem rather than stopping at the first, so `check-config` shows an admin
everything to fix in one go. One small function per section, in the manner of fedora-messaging.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.config.checks import (
    Table,
    check_dsn,
    check_network,
    check_region,
    check_url,
    one_of,
    show,
)
from agent.config.load_pbx import pbx_sections
from agent.config.sections import (
    DEFAULT_CONFIG,
    ENV_CONFIG,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_MP3_CACHE_MB,
    MAX_RETENTION_DAYS,
    AgentSection,
    AgiSection,
    Config,
    ConfigError,
    DatabaseSection,
    HttpSection,
    OutboxSection,
    RetentionSection,
)


def config_path(cli_value: str | None) -> Path:
    """`-c PATH` wins, then $PBX_AGENT_CONFIG, then ./agent.toml."""
    return Path(cli_value or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)


def load(path: Path) -> Config:
    label = path.name
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file (choose one with -c PATH or ${ENV_CONFIG})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{label}: not valid UTF-8"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{label}: not valid TOML: {exc}"]) from None
    return parse(raw, path)


def parse(raw: Mapping[str, Any], path: Path) -> Config:
    problems: list[str] = []
    label = path.name
    base_dir = path.resolve().parent

    known = {"agent", "database", "http", "agi", "pbx", "outbox", "retention"}
    for key in raw:
        if key not in known:
            problems.append(f"{label}: [{key}]: unknown table (known: {', '.join(sorted(known))})")

    def table(name: str) -> Table:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            problems.append(f"{label}: {name}: expected a table, got {show(value)}")
            value = {}
        return Table(label, f"[{name}]", value, problems)

    agent = _agent_section(table("agent"), base_dir)
    database = _database_section(table("database"))
    http = _http_section(table("http"))
    agi = _agi_section(table("agi"))
    pbx = pbx_sections(raw.get("pbx", []), label, base_dir, problems)
    outbox = _outbox_section(table("outbox"))
    retention = _retention_section(table("retention"))

    if problems:
        raise ConfigError(problems)
    return Config(
        path=path, agent=agent, database=database, http=http, agi=agi, pbx=pbx, outbox=outbox, retention=retention
    )


def _agent_section(t: Table, base_dir: Path) -> AgentSection:
    state_dir = t.string("state_dir", "state")
    public_url = t.string("public_url", AgentSection.public_url, check=check_url)
    level = t.string("log_level", AgentSection.log_level, check=one_of(LOG_LEVELS))
    fmt = t.string("log_format", AgentSection.log_format, check=one_of(LOG_FORMATS))
    region = t.string("default_region", AgentSection.default_region, check=check_region)
    shutdown = t.number("shutdown_timeout", AgentSection.shutdown_timeout, minimum=1)
    recordings_dir = t.string("recordings_dir", str(AgentSection.recordings_dir))
    mp3_cache_mb = t.integer("mp3_cache_mb", AgentSection.mp3_cache_mb, minimum=1, maximum=MAX_MP3_CACHE_MB)
    allow_private = t.boolean("allow_private_public_url", AgentSection.allow_private_public_url)
    t.reject_unknown()
    state_path = Path(state_dir).expanduser()
    if not state_path.is_absolute():
        state_path = base_dir / state_path
    recordings_path = Path(recordings_dir or AgentSection.recordings_dir).expanduser()
    if not recordings_path.is_absolute():
        recordings_path = base_dir / recordings_path
    return AgentSection(
        state_dir=state_path,
        public_url=public_url.rstrip("/"),
        log_level=level,
        log_format=fmt,
        default_region=region.upper(),
        shutdown_timeout=shutdown,
        recordings_dir=recordings_path,
        mp3_cache_mb=mp3_cache_mb,
        allow_private_public_url=allow_private,
    )


def _database_section(t: Table) -> DatabaseSection:
    dsn = t.string("dsn", "", check=check_dsn)
    pool_size = t.integer("pool_size", DatabaseSection.pool_size, minimum=2, maximum=200)
    t.reject_unknown()
    return DatabaseSection(dsn=dsn, pool_size=pool_size)


def _http_section(t: Table) -> HttpSection:
    listen = t.address("listen", HttpSection.listen)
    public = t.address("public_listen", listen) if "public_listen" in t.data else None
    proxies = t.strings("trusted_proxies", (), check=check_network) if "trusted_proxies" in t.data else None
    t.reject_unknown()
    if public == listen:
        t.problem("public_listen", "must differ from listen (the point is to keep the private routes off it)")
    if proxies is None:
        return HttpSection(listen=listen, public_listen=public)
    trusted = tuple(ipaddress.ip_network(p, strict=False) for p in proxies)
    return HttpSection(listen=listen, public_listen=public, trusted_proxies=trusted)


def _outbox_section(t: Table) -> OutboxSection:
    d = OutboxSection()
    section = OutboxSection(
        lease=t.number("lease", d.lease, minimum=1),
        max_age=t.number("max_age", d.max_age, minimum=60),
        account_concurrency=t.integer("account_concurrency", d.account_concurrency, minimum=1, maximum=64),
        breaker_threshold=t.integer("breaker_threshold", d.breaker_threshold, minimum=1, maximum=1000),
        breaker_cooldown=t.number("breaker_cooldown", d.breaker_cooldown, minimum=0.1),
        recording_wait=t.number("recording_wait", d.recording_wait, minimum=0),
        agents_refresh=t.number("agents_refresh", d.agents_refresh, minimum=1),
    )
    t.reject_unknown()
    return section


def _retention_section(t: Table) -> RetentionSection:
    d = RetentionSection()
    section = RetentionSection(
        logs_days=t.integer("logs_days", d.logs_days, minimum=0, maximum=MAX_RETENTION_DAYS),
        deliveries_days=t.integer("deliveries_days", d.deliveries_days, minimum=0, maximum=MAX_RETENTION_DAYS),
        calls_days=t.integer("calls_days", d.calls_days, minimum=0, maximum=MAX_RETENTION_DAYS),
    )
    t.reject_unknown()
    return section


def _agi_section(t: Table) -> AgiSection:
    listen = t.address("listen", AgiSection.listen)
    deadline = t.integer("deadline_ms", AgiSection.deadline_ms, minimum=50, maximum=10_000)
    t.reject_unknown()
    return AgiSection(listen=listen, deadline_ms=deadline)
