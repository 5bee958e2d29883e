"""AMI over TLS (`[[pbx]] tls`, Asterisk's manager.conf `tlsenable`): over a real TLS socket, a PBX whose
certificate is trusted through `ca_file` and names `server_name` gives its calls; any other certificate is
refused loudly, retried slowly, and nothing is read from it."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import math
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config.load import load
from agent.config.sections import TlsSection
from agent.ingest import link as link_module
from agent.ingest.pipeline import PbxPipeline
from agent.tracking.event import CallEvent
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics
from tests import recordings
from tests.fakes.ami import FakeAmi
from tests.test_ami_link import essence, pbx_for
from tests.test_config import VALID, problems, write
from tests.waiting import until

NAME = "asterisk.office.test"


def self_signed(folder: Path, name: str, *, ip: str | None = None) -> tuple[Path, Path]:
    """A certificate for `name` (and `ip`), signed by its own key, as an Asterisk admin makes with ast_tls_cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    alt: list[x509.GeneralName] = [x509.DNSName(name)]
    if ip:
        alt.append(x509.IPAddress(ipaddress.ip_address(ip)))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@asynccontextmanager
async def tls_pipeline(
    fake: FakeAmi, tls: TlsSection | None, auth_retry: float = 30.0
) -> AsyncIterator[tuple[HealthRegistry, list[CallEvent]]]:
    health = HealthRegistry()
    events: list[CallEvent] = []
    pipe = PbxPipeline(replace(pbx_for(fake), tls=tls), "BY", health, Metrics(), events.append)
    pipe.link.auth_retry = auth_retry
    task = asyncio.create_task(pipe.run())
    try:
        yield health, events
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def link_error(health: HealthRegistry) -> str:
    """The PBX link's error in /health, once it has one."""
    found: list[str] = []

    async def failed() -> bool:
        found[:] = [(await health.report())["components"]["pbx:office"].get("error") or ""]
        return bool(found[0])

    await until(failed, within=10)
    return found[0]


async def test_a_trusted_certificate_gives_the_calls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, NAME)
    directory = recordings.recordings_dir()
    fake = FakeAmi(directory / "a_incoming_answered.ami", speed=math.inf, tls=server_context(cert, key))
    async with fake, tls_pipeline(fake, TlsSection(ca_file=cert, server_name=NAME)) as (health, events):
        await fake.wait_finished(within=10)
        await until(lambda: any(e.event == "ended" for e in events), within=10)
        link = (await health.report())["components"]["pbx:office"]
    assert link["status"] == "ok" and link["tls"] is True
    assert essence(events) == essence(recordings.play("a_incoming_answered", with_timing=False))


@pytest.mark.parametrize("case", ["another certificate", "another name", "the system's CAs"])
async def test_any_other_certificate_is_refused_loudly_and_retried_slowly(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = self_signed(tmp_path, NAME, ip="127.0.0.1")
    stranger, _ = self_signed(tmp_path, "stranger.test")
    tls = {
        "another certificate": TlsSection(ca_file=stranger, server_name=NAME),
        "another name": TlsSection(ca_file=cert, server_name="pbx.elsewhere.test"),
        "the system's CAs": TlsSection(server_name=NAME),
    }[case]
    directory = recordings.recordings_dir()
    fake = FakeAmi(directory / "a_incoming_answered.ami", speed=math.inf, tls=server_context(cert, key))
    refused = "TLS certificate was not accepted"
    with caplog.at_level(logging.ERROR, logger="agent.ingest.link"):
        async with fake, tls_pipeline(fake, tls, auth_retry=1.0) as (health, events):
            await until(lambda: refused in caplog.text, within=10)
            link = (await health.report())["components"]["pbx:office"]
            await until(lambda: caplog.text.count(refused) >= 2, within=10)
    first, second = [r.created for r in caplog.records if refused in r.getMessage()][:2]
    assert second - first >= 0.95  # retried after auth_retry, not at the connect back-off's 0.5 s
    assert link["status"] == "down" and refused in link["error"] and link["tls"] is True
    assert fake.connections == 0 and fake.logins == 0 and not events  # no byte of AMI over a refused certificate


async def test_tls_to_a_plain_port_and_plain_to_a_tls_port_say_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two mix-ups an admin makes: each one's /health error names it instead of a bare TimeoutError."""
    monkeypatch.setattr(link_module, "LOGIN_TIMEOUT_S", 0.3)
    cert, key = self_signed(tmp_path, NAME)
    directory = recordings.recordings_dir()
    plain = FakeAmi(directory / "a_incoming_answered.ami", speed=math.inf)
    async with plain, tls_pipeline(plain, TlsSection(ca_file=cert, server_name=NAME)) as (health, _):
        error = await link_error(health)
    assert error.startswith(f"TLS with 127.0.0.1:{plain.port} failed") and "tlsenable" in error, error
    secure = FakeAmi(directory / "a_incoming_answered.ami", speed=math.inf, tls=server_context(cert, key))
    async with secure, tls_pipeline(secure, None) as (health, _):
        error = await link_error(health)
    assert error == (
        f"no AMI greeting from 127.0.0.1:{secure.port} within 0.3 s: is it Asterisk's AMI port"
        " (a TLS one needs [[pbx]] tls)?"
    )


def test_the_tls_settings(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path, NAME)
    (pbx,) = load(write(tmp_path, VALID + "tls = true\n")).pbx
    assert pbx.tls == TlsSection() and pbx.port == 5039  # manager.conf's tlsbindaddr port unless given
    (pbx,) = load(write(tmp_path, VALID + f'tls = {{ ca_file = "{cert.name}", server_name = "{NAME}" }}\n')).pbx
    assert pbx.tls == TlsSection(ca_file=cert, server_name=NAME) and pbx.port == 5039
    (pbx,) = load(write(tmp_path, VALID + "port = 6000\ntls = true\n")).pbx
    assert pbx.port == 6000
    assert load(write(tmp_path, VALID + "tls = false\n")).pbx[0].tls is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('tls = "yes"\n', "tls: expected true or a table"),
        ('tls = { ca_file = "missing.pem" }\n', "tls.ca_file: no such file"),
        ('tls = { ca_file = "junk.pem" }\n', "tls.ca_file: "),
        ("tls = { verify = false }\n", "tls.verify: unknown key"),
        (
            'tls = true\nssh = { host = "h", username = "u", key_file = "junk.pem", known_hosts = "junk.pem" }\n',
            "tls: not with ssh",
        ),
    ],
)
def test_tls_problems(tmp_path: Path, extra: str, expected: str) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    found = problems(tmp_path, VALID + extra)
    assert any(p.startswith("agent.toml: [[pbx]] office " + expected) for p in found), found
