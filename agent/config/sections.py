"""agent.toml's sections: one typed, frozen dataclass per table, with its defaults (the one place they live).
Reading and validating the file is agent.config.load."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.config.checks import Address

DEFAULT_HTTP_LISTEN = Address("127.0.0.1", 8019)
DEFAULT_AGI_LISTEN = Address("127.0.0.1", 4573)

ENV_CONFIG = "PBX_AGENT_CONFIG"
DEFAULT_CONFIG = "agent.toml"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
MAX_MP3_CACHE_MB = 1024 * 1024  # [agent] mp3_cache_mb: 1 TiB
MAX_RETENTION_DAYS = 36500  # [retention] *_days: a hundred years


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class AgentSection:
    state_dir: Path
    public_url: str = "http://127.0.0.1:8019"
    log_level: str = "info"
    log_format: str = "text"
    default_region: str = "BY"
    shutdown_timeout: float = 10.0
    recordings_dir: Path = Path("/var/spool/asterisk/monitor")
    mp3_cache_mb: int = 1024  # MP3s of WAV recordings kept under state_dir/records-mp3 (least recently used go)
    allow_private_public_url: bool = False  # a test install: register CRM modules at an unreachable public_url


@dataclass(frozen=True)
class DatabaseSection:
    dsn: str = ""
    pool_size: int = 10


@dataclass(frozen=True)
class HttpSection:
    listen: Address = DEFAULT_HTTP_LISTEN
    # a second listener with only what the CRMs' servers must reach (callbacks, webhooks, recordings); the
    # admin site, /api, /health and /metrics stay on `listen`
    public_listen: Address | None = None
    # reverse proxies whose X-Forwarded-For is believed (the client's address for sign-in lockouts and logs)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


@dataclass(frozen=True)
class AgiSection:
    listen: Address = DEFAULT_AGI_LISTEN
    deadline_ms: int = 800


@dataclass(frozen=True)
class OutboxSection:
    lease: float = 60.0
    max_age: float = 24 * 3600.0
    account_concurrency: int = 4
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    recording_wait: float = 10.0  # seconds an upload with a recording waits for the file to be finished; 0: off
    agents_refresh: float = 20.0  # seconds between counts of the agents sharing the CRMs' rate limits


# The outbox's defaults, here only: agent.delivery's OutboxPolicy and CrmDispatcher take theirs from it.
OUTBOX_DEFAULTS = OutboxSection()


@dataclass(frozen=True)
class RetentionSection:
    """How many days rows are kept before agent.store.retention deletes them; 0 keeps them forever."""

    logs_days: int = 30  # integration_logs
    deliveries_days: int = 30  # deliveries in a final state (done, expired, dead, failed), by updated_at
    calls_days: int = 0  # calls: small, the admin's call history and backfill's "already stored" check


@dataclass(frozen=True)
class TlsSection:
    """`[[pbx]] tls = {...}`: AMI over TLS (Asterisk's manager.conf `tlsenable`), the certificate checked."""

    ca_file: Path | None = None  # the PBX's certificate or its CA (PEM); None: the system's CAs
    server_name: str | None = None  # the name the certificate must carry; None: `host`


@dataclass(frozen=True)
class SshSection:
    """`[[pbx]] ssh = {...}`: AMI (and SFTP recordings) through an SSH connection to the PBX host."""

    host: str
    username: str
    key_file: Path
    known_hosts: Path
    port: int = 22
    keepalive: float = 15.0  # seconds between SSH keepalives; 3 unanswered close the connection

    def __str__(self) -> str:
        return f"{self.username}@{Address(self.host, self.port)}"


DEFAULT_CDR_CSV = "/var/log/asterisk/cdr-csv/Master.csv"
DEFAULT_CEL_CSV = "/var/log/asterisk/cel-custom/Master.csv"  # cel_custom's, when its mapping is uncommented


@dataclass(frozen=True)
class RecordingsSource:
    """`[[pbx]] recordings`: where this PBX's call recordings are read from."""

    kind: Literal["local", "sftp"]
    root: str  # an absolute directory: on this host (local) or on the PBX (sftp)

    def __str__(self) -> str:
        return f"{self.kind}:{self.root}"


@dataclass(frozen=True)
class PbxSection:
    name: str
    enterprise: str
    username: str
    secret: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 5038
    region: str | None = None
    internal_channel_patterns: tuple[str, ...] = ()
    internal_number_pattern: str | None = None
    trunk_contexts: tuple[str, ...] = ()
    recording_variables: tuple[str, ...] = ()  # dialplan variables naming a call's recording file
    originate_channel: str = "PJSIP/{extension}"  # click-to-call: the manager's phone, rung first
    originate_context: str = "from-internal"  # ... then the number is dialled in this context
    ssh: SshSection | None = None  # AMI through SSH; host/port are then as seen from the PBX
    tls: TlsSection | None = None  # AMI over TLS (port 5039 unless given); not with ssh
    recordings: RecordingsSource | None = None  # None: [agent] recordings_dir
    cdr_csv: RecordingsSource | None = None  # Master.csv for `pbx-agent backfill`; None: the default place
    cdr_db: str | None = field(default=None, repr=False)  # the CDR in PostgreSQL (cdr_pgsql): a DSN; wins over cdr_csv
    cdr_db_table: str = "cdr"
    cel_csv: RecordingsSource | None = None  # cel_custom's CSV; None: the default place, used when it is there
    cel_csv_fields: tuple[str, ...] = ()  # its columns in order; (): cel_custom.conf.sample's mapping
    cel_db_table: str = "cel"  # the CEL table in cdr_db's database; "": none

    @property
    def cdr_source(self) -> RecordingsSource:
        """Where `pbx-agent backfill` reads this PBX's CDR (over SFTP by default when AMI goes through SSH)."""
        if self.cdr_csv is not None:
            return self.cdr_csv
        return RecordingsSource("sftp" if self.ssh is not None else "local", DEFAULT_CDR_CSV)

    @property
    def cel_source(self) -> RecordingsSource:
        if self.cel_csv is not None:
            return self.cel_csv
        return RecordingsSource("sftp" if self.ssh is not None else "local", DEFAULT_CEL_CSV)


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    agent: AgentSection
    database: DatabaseSection
    http: HttpSection
    agi: AgiSection
    pbx: tuple[PbxSection, ...]
    outbox: OutboxSection = field(default_factory=OutboxSection)
    retention: RetentionSection = field(default_factory=RetentionSection)

    @property
    def enterprises(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.enterprise for p in self.pbx))
