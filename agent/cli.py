"""The `pbx-agent` command line."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from agent import __version__
from agent.config.load import config_path, load
from agent.config.sections import Config, ConfigError
from agent.life.runas import StateOwnedByService, refuse_root_run

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _load_config(args: argparse.Namespace) -> Config:
    return load(config_path(args.config))


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load_config(args)
    print(f"{cfg.path}: ok ({len(cfg.pbx)} PBX, {len(cfg.enterprises)} enterprise(s))")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from agent.app import serve
    from agent.life import logs
    from agent.parts.errors import ConflictError, StartupError
    from agent.store.embedded import EmbeddedPgError

    cfg = _load_config(args)
    refuse_root_run(cfg.agent.state_dir)
    logs.setup(cfg.agent.log_level, cfg.agent.log_format, journal=bool(os.environ.get("JOURNAL_STREAM")))
    try:
        return asyncio.run(serve(cfg))
    except (EmbeddedPgError, ConflictError) as exc:
        logging.getLogger("agent").error("%s", exc)
        return EXIT_USAGE
    except StartupError as exc:
        logging.getLogger("agent").error("%s", exc)
        return EXIT_FAILURE


def cmd_migrate(args: argparse.Namespace) -> int:
    import asyncpg

    from agent.life import logs
    from agent.store import database, peers
    from agent.store.embedded import EmbeddedPgError

    cfg = _load_config(args)
    logs.setup(cfg.agent.log_level, cfg.agent.log_format)

    async def migrate() -> list[str]:
        async with database.embedded_or_external(cfg.database.dsn, cfg.agent.state_dir) as dsn:
            pool = await database.create_pool(dsn, 2, name=peers.tool_name("migrate"))
            try:
                return await database.migrate(pool, said)
            finally:
                await pool.close()

    def said(version: str, changes: list[str]) -> None:
        print(f"{version}:")
        for line in changes or ["nothing to change (already there)"]:
            print(f"  {line}")

    try:
        applied = asyncio.run(migrate())
    except EmbeddedPgError as exc:
        print(f"pbx-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except asyncpg.PostgresError as exc:  # the migration rolled back: nothing of it was applied
        print(f"pbx-agent migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")
    return EXIT_OK


def cmd_check_legacy(args: argparse.Namespace) -> int:
    from agent.parts import legacy_check
    from agent.store import database, peers
    from agent.store.embedded import EmbeddedPgError
    from agent.store.secretbox import SecretBox, load_or_create_secret
    from connectors.registry import connectors, secret_fields

    cfg = _load_config(args)
    box = SecretBox(load_or_create_secret(cfg.agent.state_dir), secret_fields())

    async def check() -> list[legacy_check.Enterprise]:
        async with database.embedded_or_external(cfg.database.dsn, cfg.agent.state_dir) as dsn:
            pool = await database.create_pool(dsn, 2, name=peers.tool_name("check-legacy"))
            try:
                return await legacy_check.check(pool, box, connectors())
            finally:
                await pool.close()

    try:
        found = asyncio.run(check())
    except EmbeddedPgError as exc:
        print(f"pbx-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(legacy_check.lines(found)))
    return EXIT_OK if all(e.usable for e in found) else EXIT_FAILURE


def cmd_token(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    import asyncpg

    from agent.config.checks import check_enterprise
    from agent.store import api_tokens, database
    from agent.store.embedded import EmbeddedPgError
    from agent.store.secretbox import load_or_create_secret
    from agent.web.tokens import TokenSigner

    cfg = _load_config(args)
    problem = check_enterprise(args.enterprise) if args.enterprise is not None else None
    if problem:
        print(f"pbx-agent token: --enterprise: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if not 0 < args.days <= 3650:
        print("pbx-agent token: --days: expected 1..3650", file=sys.stderr)
        return EXIT_USAGE
    signer = TokenSigner(load_or_create_secret(cfg.agent.state_dir))
    token = signer.issue(args.enterprise, args.days) if not (args.list or args.revoke) else ""

    async def with_database() -> str:
        """The table of issued tokens: record the new one, list them, or revoke one."""
        async with database.embedded_or_external(cfg.database.dsn, cfg.agent.state_dir) as dsn:
            pool = await database.create_pool(dsn, 1, name="pbx-agent token")
            try:
                await database.migrate(pool)
                if args.list:
                    rows = await api_tokens.listing(pool)
                    return (
                        "\n".join(
                            f"{r['id']}  {r['state']:<7}  {r['enterprise'] or 'all':<8}  until {r['expires_at'][:10]}"
                            f"  {r['label']}"
                            for r in rows
                        )
                        or "no tokens recorded"
                    )
                if args.revoke:
                    done = await api_tokens.revoke(pool, args.revoke)
                    return f"revoked {args.revoke}" if done else ""
                claims = signer.verify(token)
                now = datetime.now(UTC)
                expires = datetime.fromtimestamp(now.timestamp() + args.days * 86400, UTC)
                await api_tokens.record(pool, claims.token_id, args.enterprise, args.label, now, expires)
                return token
            finally:
                await pool.close()

    try:
        out = asyncio.run(with_database())
    except (OSError, asyncpg.PostgresError, EmbeddedPgError) as exc:
        print(f"pbx-agent token: the database, where tokens are recorded, cannot be used: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.revoke and not out:
        print(f"pbx-agent token: --revoke: no valid token {args.revoke} (see --list)", file=sys.stderr)
        return EXIT_USAGE
    print(out)
    return EXIT_OK


def cmd_redeliver(args: argparse.Namespace) -> int:
    from agent.life import logs
    from agent.repair import redeliver
    from agent.store.embedded import EmbeddedPgError

    cfg = _load_config(args)
    logs.setup("warning", cfg.agent.log_format)
    try:
        calls, added = asyncio.run(redeliver.redeliver(cfg, args))
    except (ValueError, EmbeddedPgError) as exc:
        print(f"pbx-agent redeliver: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"\n{calls} call(s) planned again; {added} new deliveries in the outbox "
        f"({(calls and 'the rest were there already') or 'no calls in that period'})"
    )
    return EXIT_OK


def cmd_backfill(args: argparse.Namespace) -> int:
    from agent.life import logs
    from agent.repair import backfill
    from agent.store.embedded import EmbeddedPgError

    cfg = _load_config(args)
    logs.setup("warning", cfg.agent.log_format)
    try:
        summary = asyncio.run(backfill.backfill(cfg, args))
    except (ValueError, EmbeddedPgError) as exc:
        print(f"pbx-agent backfill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    backfill.report(summary)
    return EXIT_OK


async def _enterprise_known(cfg: Config, number: str) -> bool:
    """Is there such an enterprise in the database (one added on the Instance page or by the API)?"""
    import asyncpg

    from agent.store import database

    async with database.embedded_or_external(cfg.database.dsn, cfg.agent.state_dir) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            return bool(await conn.fetchval("SELECT to_regclass('enterprises') IS NOT NULL")) and bool(
                await conn.fetchval("SELECT 1 FROM enterprises WHERE number = $1", number)
            )
        finally:
            await conn.close()


def cmd_admin_link(args: argparse.Namespace) -> int:
    import asyncpg

    from admin.auth import LINK_MINUTES_MAX, LinkSigner
    from agent.config.checks import check_enterprise
    from agent.store.embedded import EmbeddedPgError
    from agent.store.secretbox import load_or_create_secret

    cfg = _load_config(args)
    problem = check_enterprise(args.enterprise) if args.enterprise is not None else None
    if problem:
        print(f"pbx-agent admin-link: --enterprise: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if not 0 < args.minutes <= LINK_MINUTES_MAX:
        print(f"pbx-agent admin-link: --minutes: expected 1..{LINK_MINUTES_MAX:g}", file=sys.stderr)
        return EXIT_USAGE
    if args.enterprise is not None and args.enterprise not in cfg.enterprises:
        try:
            known = asyncio.run(_enterprise_known(cfg, args.enterprise))
        except (OSError, asyncpg.PostgresError, EmbeddedPgError) as exc:
            print(f"pbx-agent admin-link: cannot check the enterprise in the database: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        if not known:
            configured = ", ".join(cfg.enterprises) or "none"
            print(
                f"pbx-agent admin-link: --enterprise: no enterprise {args.enterprise} (in the config: {configured}; "
                "none of that number in the database either)",
                file=sys.stderr,
            )
            return EXIT_USAGE
    signer = LinkSigner(load_or_create_secret(cfg.agent.state_dir))
    token = signer.issue(args.enterprise, args.role, args.minutes)
    print(f"{cfg.agent.public_url}/admin/login?token={token}")
    return EXIT_OK


def cmd_admin_password(args: argparse.Namespace) -> int:
    import asyncpg

    from admin import passwords
    from agent.config.checks import check_enterprise
    from agent.store import database
    from agent.store.embedded import EmbeddedPgError

    cfg = _load_config(args)
    name = "pbx-agent admin-password"
    problem = check_enterprise(args.enterprise)
    if problem:
        print(f"{name}: --enterprise: {problem}", file=sys.stderr)
        return EXIT_USAGE
    password = "" if args.remove else passwords.read_password()
    problem = None if args.remove else passwords.problem(password)
    if problem:
        print(f"{name}: the password (read from stdin, or asked twice on a terminal): {problem}", file=sys.stderr)
        return EXIT_USAGE

    async def with_database() -> bool:
        async with database.embedded_or_external(cfg.database.dsn, cfg.agent.state_dir) as dsn:
            pool = await database.create_pool(dsn, 1, name=name)
            try:
                await database.migrate(pool)
                if args.remove:
                    return await passwords.remove_password(pool, args.enterprise)
                await passwords.set_password(pool, args.enterprise, args.role, password)
                return True
            finally:
                await pool.close()

    try:
        if args.enterprise not in cfg.enterprises and not asyncio.run(_enterprise_known(cfg, args.enterprise)):
            print(f"{name}: --enterprise: no enterprise {args.enterprise} (config or database)", file=sys.stderr)
            return EXIT_USAGE
        done = asyncio.run(with_database())
    except (OSError, asyncpg.PostgresError, EmbeddedPgError) as exc:
        print(f"{name}: the database cannot be used: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.remove:
        print(f"password of enterprise {args.enterprise} removed" if done else f"enterprise {args.enterprise} had none")
    else:
        print(f"password of enterprise {args.enterprise} set: it signs in as {args.role} at /admin/login")
    return EXIT_OK


def cmd_check_pbx(args: argparse.Namespace) -> int:
    result: int = importlib.import_module("agent.ingest.check").main(_load_config(args), args)
    return result


def cmd_replay(args: argparse.Namespace) -> int:
    result: int = importlib.import_module("agent.repair.replay").run(args)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbx-agent", description="Bridge between an Asterisk PBX and CRMs (RetailCRM, amoCRM)."
    )
    parser.add_argument("--version", action="version", version=f"pbx-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, func: Callable[[argparse.Namespace], int], help_: str, config: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        if config:
            p.add_argument(
                "-c",
                "--config",
                metavar="PATH",
                help="configuration file (default: $PBX_AGENT_CONFIG, else ./agent.toml)",
            )
        p.set_defaults(func=func)
        return p

    command("run", cmd_run, "run the agent until SIGTERM/SIGINT")
    command("check-config", cmd_check_config, "validate the configuration file and exit (2 when invalid)")
    command("migrate", cmd_migrate, "apply database migrations and exit")
    command(
        "check-legacy",
        cmd_check_legacy,
        "list each enterprise's CRM records as the agent reads them and what makes one unusable (exit 1 then)",
    )
    token = command("token", cmd_token, "print an API token (JWT) for the /api routes")
    token.add_argument("--enterprise", metavar="N", help="limit the token to one enterprise (default: admin)")
    token.add_argument("--days", type=float, default=365, metavar="D", help="validity in days (default 365)")
    token.add_argument("--label", default="", metavar="TEXT", help="what the token is for (shown by --list)")
    token.add_argument("--list", action="store_true", help="list the tokens issued (ids, never the tokens)")
    token.add_argument("--revoke", metavar="ID", help="revoke one token by its id (from --list)")
    redeliver_cmd = command("redeliver", cmd_redeliver, "plan stored calls of a period into the outbox again")
    importlib.import_module("agent.repair.redeliver").add_arguments(redeliver_cmd)
    backfill_cmd = command("backfill", cmd_backfill, "store and plan the calls of a period that only the PBX's CDR has")
    importlib.import_module("agent.repair.backfill").add_arguments(backfill_cmd)
    link = command("admin-link", cmd_admin_link, "print a one-time sign-in link to the admin pages")
    link.add_argument("--enterprise", metavar="N", help="an enterprise session (default: the whole instance)")
    link.add_argument("--role", choices=("admin", "viewer"), default="admin", help="admin (default) or viewer")
    link.add_argument("--minutes", type=float, default=15, metavar="M", help="the link works for M minutes (15)")
    pw = command("admin-password", cmd_admin_password, "set (from stdin) or remove an enterprise's sign-in password")
    pw.add_argument("--enterprise", metavar="N", required=True, help="the enterprise the password signs in to")
    pw.add_argument("--role", choices=("admin", "viewer"), default="admin", help="admin (default) or viewer")
    pw.add_argument("--remove", action="store_true", help="remove the enterprise's password")
    check_pbx = command("check-pbx", cmd_check_pbx, "log in to each [[pbx]] as the agent does and say what works")
    importlib.import_module("agent.ingest.check").add_arguments(check_pbx)
    replay = command("replay", cmd_replay, "print the calls a recorded AMI byte stream gives", config=False)
    try:
        importlib.import_module("agent.repair.replay").add_arguments(replay)
    except ModuleNotFoundError:  # the call tracker is not part of this build yet
        replay.set_defaults(func=lambda _args: _unavailable("replay"))
    return parser


def _unavailable(name: str) -> int:
    print(f"pbx-agent: {name} is not available in this build", file=sys.stderr)
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except StateOwnedByService as exc:
        print(f"pbx-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
