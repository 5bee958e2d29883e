"""agent.toml's `[[pbx]]` tables: the PBXes, their SSH tunnels, recording and CDR/CEL sources, secret files;
every problem named by table and key like the rest of agent.config.load."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config.checks import (
    Table,
    check_cdr_db,
    check_context,
    check_enterprise,
    check_host,
    check_name,
    check_originate_channel,
    check_regex,
    check_region,
    check_ssh_user,
    check_table,
    check_variable,
    show,
)
from agent.config.sections import (
    DEFAULT_CDR_CSV,
    DEFAULT_CEL_CSV,
    PbxSection,
    RecordingsSource,
    SshSection,
    TlsSection,
)

AMI_TLS_PORT = 5039  # Asterisk's manager.conf tlsbindaddr default


def pbx_sections(value: Any, label: str, base_dir: Path, problems: list[str]) -> tuple[PbxSection, ...]:
    if not isinstance(value, list):
        problems.append(f"{label}: pbx: expected an array of tables ([[pbx]]), got {show(value)}")
        return ()
    result: list[PbxSection] = []
    names: set[str] = set()
    for index, entry in enumerate(value):
        where = f"[[pbx]] #{index + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{label}: {where}: expected a table, got {show(entry)}")
            continue
        t = Table(label, where, entry, problems)
        name = t.string("name", None, check=check_name)
        if name:
            t.where = f"[[pbx]] {name}"
            if name in names:
                problems.append(f"{label}: {t.where} name: duplicate PBX name")
            names.add(name)
        enterprise = t.string("enterprise", None, check=check_enterprise)
        host = t.string("host", PbxSection.host, check=check_host)
        tls = _tls_table(t, base_dir)
        port = t.integer("port", AMI_TLS_PORT if tls else PbxSection.port, minimum=1, maximum=65535)
        username = t.string("username", None)
        secret = t.string("secret", "")
        secret_file = t.string("secret_file", "")
        region = t.string("region", "", check=check_region) or None
        patterns = t.strings("internal_channel_patterns", (), check=check_regex)
        number_pattern = t.string("internal_number_pattern", "", check=check_regex) or None
        trunk_contexts = t.strings("trunk_contexts", ())
        recording_variables = tuple(v.lstrip("_") for v in t.strings("recording_variables", (), check=check_variable))
        originate_channel = t.string("originate_channel", PbxSection.originate_channel, check=check_originate_channel)
        originate_context = t.string("originate_context", PbxSection.originate_context, check=check_context)
        for key in ("originate_channel", "originate_context"):
            if entry.get(key) == "":
                t.problem(key, "must not be empty (leave the key out for the default)")
        ssh = _ssh_table(t, base_dir)
        recordings = _recordings_source(t, base_dir, ssh)
        cdr_csv = _cdr_source(t, base_dir, ssh)
        cdr_db = t.string("cdr_db", "", check=check_cdr_db) or None
        cdr_db_table = t.string("cdr_db_table", PbxSection.cdr_db_table, check=check_table)
        cel_csv = _cdr_source(t, base_dir, ssh, "cel_csv", DEFAULT_CEL_CSV)
        cel_csv_fields = t.strings("cel_csv_fields", ())
        cel_db_table = t.string("cel_db_table", PbxSection.cel_db_table, check=check_table)
        t.reject_unknown()
        if tls is not None and ssh is not None:
            problems.append(f"{label}: {t.where} tls: not with ssh (the SSH connection already encrypts AMI)")
        if secret and secret_file:
            problems.append(f"{label}: {t.where} secret: give either secret or secret_file, not both")
        elif secret_file:
            secret = _read_secret_file(secret_file, base_dir, label, t.where, problems)
        elif not secret:
            problems.append(f"{label}: {t.where} secret: missing (give secret or secret_file)")
        if name and enterprise and username and secret:
            result.append(
                PbxSection(
                    name=name,
                    enterprise=enterprise,
                    username=username,
                    secret=secret,
                    host=host,
                    port=port,
                    region=region.upper() if region else None,
                    internal_channel_patterns=patterns,
                    internal_number_pattern=number_pattern,
                    trunk_contexts=trunk_contexts,
                    recording_variables=recording_variables,
                    originate_channel=originate_channel,
                    originate_context=originate_context,
                    ssh=ssh,
                    tls=tls,
                    recordings=recordings,
                    cdr_csv=cdr_csv,
                    cdr_db=cdr_db,
                    cdr_db_table=cdr_db_table,
                    cel_csv=cel_csv,
                    cel_csv_fields=cel_csv_fields,
                    cel_db_table=cel_db_table,
                )
            )
    return tuple(result)


def _ssh_table(t: Table, base_dir: Path) -> SshSection | None:
    present, value = t._get("ssh")
    if not present:
        return None
    if not isinstance(value, dict):
        t.problem(
            "ssh",
            'expected a table such as { host = "pbx.example.com", username = "pbxagent", '
            'key_file = "...", known_hosts = "..." }, got ' + show(value),
        )
        return None
    s = Table(t.label, t.where, value, t.problems, prefix="ssh.")
    before = len(t.problems)
    host = s.string("host", None, check=check_host)
    port = s.integer("port", SshSection.port, minimum=1, maximum=65535)
    username = s.string("username", None, check=check_ssh_user)
    key_file = _readable_file(
        s,
        "key_file",
        base_dir,
        "the private key this agent logs in with (its .pub line goes in the PBX user's ~/.ssh/authorized_keys)",
    )
    known_hosts = _readable_file(
        s,
        "known_hosts",
        base_dir,
        "the PBX's host key is checked against this file; there is no accept-anything "
        "default (make one with ssh-keyscan and compare the fingerprint)",
    )
    keepalive = s.number("keepalive", SshSection.keepalive, minimum=1)
    s.reject_unknown()
    if len(t.problems) > before or key_file is None or known_hosts is None:
        return None
    return SshSection(
        host=host, username=username, key_file=key_file, known_hosts=known_hosts, port=port, keepalive=keepalive
    )


def _tls_table(t: Table, base_dir: Path) -> TlsSection | None:
    """`tls = true` (the system's CAs) or `tls = { ca_file = "...", server_name = "..." }`."""
    present, value = t._get("tls")
    if not present or value is False:
        return None
    if value is True:
        return TlsSection()
    if not isinstance(value, dict):
        t.problem("tls", 'expected true or a table such as { ca_file = "asterisk.pem" }, got ' + show(value))
        return None
    s = Table(t.label, t.where, value, t.problems, prefix="tls.")
    before = len(t.problems)
    ca_file = None
    if "ca_file" in value:
        ca_file = _readable_file(s, "ca_file", base_dir, "")
        if ca_file is not None:
            try:
                ssl.create_default_context(cafile=str(ca_file))
            except (ssl.SSLError, ValueError) as exc:
                s.problem("ca_file", f"{ca_file} holds no PEM certificate ({exc})")
    server_name = s.string("server_name", "", check=check_host) or None
    s.reject_unknown()
    if len(t.problems) > before:
        return None
    return TlsSection(ca_file=ca_file, server_name=server_name)


def _readable_file(t: Table, key: str, base_dir: Path, why: str) -> Path | None:
    if key not in t.data:
        t.seen.add(key)
        t.problem(key, f"missing (required): {why}")
        return None
    value = t.string(key, "")
    if not value:
        if t.data.get(key) == "":
            t.problem(key, "must not be empty")
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        t.problem(key, f"no such file: {path}")
        return None
    if not os.access(path, os.R_OK):
        t.problem(key, f"cannot read {path}: permission denied")
        return None
    return path


def _recordings_source(t: Table, base_dir: Path, ssh: SshSection | None) -> RecordingsSource | None:
    value = t.string("recordings", "")
    if not value:
        if t.data.get("recordings") == "":
            t.problem("recordings", "must not be empty (leave the key out for [agent] recordings_dir)")
        return None
    kind, _, rest = value.partition(":")
    if kind == "sftp":
        if ssh is None and "ssh" not in t.data:
            t.problem("recordings", f"{show(value)} reads over SFTP, which needs ssh = {{...}} in this [[pbx]]")
            return None
        if not rest.startswith("/"):
            t.problem("recordings", f'expected "sftp:/absolute/directory/on/the/pbx", got {show(value)}')
            return None
        return RecordingsSource("sftp", os.path.normpath(rest))
    if kind == "local" and rest:
        value = rest
    elif ":" in value:
        t.problem("recordings", f'expected "/directory", "local:/directory" or "sftp:/directory", got {show(value)}')
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return RecordingsSource("local", os.path.normpath(path))


def _cdr_source(
    t: Table, base_dir: Path, ssh: SshSection | None, key: str = "cdr_csv", default: str = DEFAULT_CDR_CSV
) -> RecordingsSource | None:
    value = t.string(key, "")
    if not value:
        if t.data.get(key) == "":
            t.problem(key, f"must not be empty (leave the key out for {default})")
        return None
    return parse_source(
        value, base_dir, has_ssh=ssh is not None or "ssh" in t.data, problem=lambda why: t.problem(key, why)
    )


def parse_source(
    value: str, base_dir: Path, *, has_ssh: bool, problem: Callable[[str], None]
) -> RecordingsSource | None:
    """`/path`, `local:/path` or `sftp:/path` (over the PBX's ssh); relative local paths from `base_dir`."""
    kind, _, rest = value.partition(":")
    if kind == "sftp":
        if not has_ssh:
            problem(f"{show(value)} reads over SFTP, which needs ssh = {{...}} in this [[pbx]]")
            return None
        if not rest.startswith("/"):
            problem(f'expected "sftp:/absolute/path/on/the/pbx", got {show(value)}')
            return None
        return RecordingsSource("sftp", os.path.normpath(rest))
    if kind == "local" and rest:
        value = rest
    elif ":" in value:
        problem(f'expected "/path", "local:/path" or "sftp:/path", got {show(value)}')
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return RecordingsSource("local", os.path.normpath(path))


def _read_secret_file(value: str, base_dir: Path, label: str, where: str, problems: list[str]) -> str:
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(f"{label}: {where} secret_file: cannot read {path}: {exc.strerror}")
        return ""
    if not secret:
        problems.append(f"{label}: {where} secret_file: {path} is empty")
    return secret
