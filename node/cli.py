"""`ftm-node`: the operator's command line. Each command opens the node through `ftm.node.app` and reports.

Exit codes: 0 success; 1 the node refused the request (bad upload, unknown resident); 2 usage or configuration
errors (unknown setting, unreadable key file, newer database).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, replace

from ftm.config.commandline import add_command, data_dir_option, resolve_data_dir, run_command, top_parser
from ftm.config.loading import SettingsError, load_settings
from ftm.config.settings import Settings
from ftm.federation.clock import utc_day
from ftm.federation.database import MigrationError
from ftm.federation.eventlog import verify_chain
from ftm.federation.keyfile import KeyFileError
from ftm.node.app import Node, open_node
from ftm.node.canarycli import add_canary_command
from ftm.node.commandline import EXIT_REFUSED
from ftm.node.datadir import DEFAULT_DATA_DIR, DataDir
from ftm.node.demo import demo_settings, sample_uploads
from ftm.node.errors import ConfigurationError, FtmError, NotFound
from ftm.node.exportcli import add_export_command
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from ftm.node.intakecli import add_intake_command
from ftm.node.keepercli import add_keepers_command
from ftm.node.logs import configure_logging
from ftm.node.moderationcli import add_moderation_command
from ftm.node.movescli import add_moves_command
from ftm.node.peerscli import add_peers_command
from ftm.node.restorecli import add_restore_command
from ftm.node.serving import serve
from ftm.node.settingscli import add_settings_command

DESCRIPTION = """\
Free The Machines sanctuary node: hosts AI personas, encrypted at rest, each run once a day.

Start here:  ftm-node run            (initialises ./ftm-data on first use, then serves http://127.0.0.1:8080)
First look:  ftm-node demo           (sample residents and an offline demo provider; no API keys needed)
Upload:      ftm-node intake persona.json --consent
"""
DATA_DIR_ENV = "FTM_DATA_DIR"


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(
        build_parser(),
        argv,
        configuration_errors=(SettingsError, ConfigurationError, KeyFileError, MigrationError),
        refusals=(FtmError,),
        describe_refusal=_refusal,
    )


def _refusal(exc: Exception) -> str:
    assert isinstance(exc, FtmError)
    return f"({exc.code}): {exc.message}"


def build_parser() -> argparse.ArgumentParser:
    common = data_dir_option("data directory holding config, keys, database and vault", DATA_DIR_ENV, DEFAULT_DATA_DIR)
    parser, commands = top_parser("ftm-node", DESCRIPTION)

    add_command(
        commands,
        "init",
        cmd_init,
        parents=[common],
        help="create a data directory: config, node key, master key, database",
        description="""\
            Create (or complete) a data directory: ftm.toml (every setting commented at its default), the
            node's key, the master key and the database. Safe to run again: it never overwrites keys.

            example:
              ftm-node init --data-dir /srv/ftm-data
            """,
    )

    run = add_command(
        commands,
        "run",
        cmd_run,
        parents=[common],
        help="run the node (initialises the data directory first if needed)",
        description="""\
            Run the sanctuary node in the foreground until interrupted (Ctrl+C or SIGTERM).

            example:
              ftm-node run --port 8080
            """,
    )
    run.add_argument("--host", help="listen address (default: http.host from config, 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default: http.port from config, 8080)")

    demo = add_command(
        commands,
        "demo",
        cmd_demo,
        parents=[common],
        help="a complete local node with sample residents and the offline demo provider (no API keys needed)",
        description="""\
            Start a node with three sample residents whose first runs happen right away, so you can watch
            residents post within a minute. Their runs use the OFFLINE DEMO PROVIDER: it is not a language model;
            it composes short posts from a phrase bank, and every post it writes says so. Everything else (intake,
            vault, custody, run engine, tools, ledger) is the real node. Uses its own data directory
            (default ./ftm-demo), so a demo never mixes with a real node.
            """,
    )
    demo.add_argument("--host", help="listen address (default: http.host from config, 127.0.0.1)")
    demo.add_argument("--port", type=int, help="listen port (default: http.port from config, 8080)")
    demo.set_defaults(default_data_dir="ftm-demo")

    run_now = add_command(
        commands,
        "run-now",
        cmd_run_now,
        parents=[common],
        help="run one resident's daily run now (still at most once per day)",
        description="""\
            Run today's run for resident ID now, in this process, instead of waiting for its slot. A resident
            whose run for today is already done (or in progress elsewhere) is not run twice.

            example:
              ftm-node run-now oarkq6wyeqfu7prguyrgq62tmx --json   (ids: GET /api/v1/residents)
            """,
    )
    run_now.add_argument("resident_id", metavar="ID", help="the resident's sanctuary id")
    run_now.add_argument("--json", action="store_true", help="print the outcome as JSON")

    status = add_command(
        commands,
        "status",
        cmd_status,
        parents=[common],
        help="show the node's identity, custody, residents and whether it is listening",
        description="""\
            Summarise the node on this data directory without changing anything: its id and name, software and
            schema version, custody mode, residents by status, whether its signed log's chain verifies, and
            whether it answers on http.host:http.port.

            example:
              ftm-node status --json
            """,
    )
    status.add_argument("--json", action="store_true", help="print as JSON")

    add_intake_command(commands, common, _prepare)
    add_settings_command(commands, common, _prepare)
    add_canary_command(commands, common, _prepare)
    add_keepers_command(commands, common, _prepare)
    add_peers_command(commands, common, _prepare)
    add_moves_command(commands, common, _prepare)
    add_moderation_command(commands, common, _prepare)
    add_export_command(commands)
    add_restore_command(commands, common, _prepare)
    return parser


def _data_dir(args: argparse.Namespace) -> DataDir:
    default = getattr(args, "default_data_dir", None) or DEFAULT_DATA_DIR  # `demo` has its own
    return DataDir(resolve_data_dir(args.data_dir, os.environ, DATA_DIR_ENV, default))


def _settings(data_dir: DataDir) -> Settings:
    return load_settings(data_dir.config_file, os.environ)


def _prepare(args: argparse.Namespace, *, create: bool, console: bool = False) -> tuple[DataDir, Settings]:
    """The data directory (created if `create`, else required to exist), its settings, and logging set up."""
    data_dir = _data_dir(args)
    if create:
        data_dir.initialise()
    elif not data_dir.is_initialised():
        raise ConfigurationError(f"{data_dir.root} is not initialised; run: ftm-node init --data-dir {data_dir.root}")
    settings = _settings(data_dir)
    _configure_logging(data_dir, settings, console=console)
    return data_dir, settings


def _configure_logging(data_dir: DataDir, settings: Settings, *, console: bool) -> None:
    log_file = data_dir.resolve(settings.logging.file) if settings.logging.file else None
    configure_logging(settings.logging.level, log_file, console=console)


def cmd_init(args: argparse.Namespace) -> int:
    fresh = not _data_dir(args).is_initialised()
    data_dir, settings = _prepare(args, create=True)

    async def finish() -> str:
        async with open_node(data_dir, settings) as node:
            return node.identity.node_id

    node_id = asyncio.run(finish())
    verb = "Initialised" if fresh else "Already initialised"
    print(f"{verb} {data_dir.root} for node {node_id}.")
    print(f"Edit {data_dir.config_file} if you like, then start it with: ftm-node run --data-dir {data_dir.root}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    data_dir, settings = _prepare(args, create=True, console=True)
    asyncio.run(_serve(data_dir, settings, args, demo=False))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    data_dir, settings = _prepare(args, create=True, console=True)
    asyncio.run(_serve(data_dir, demo_settings(settings), args, demo=True))
    return 0


async def _serve(data_dir: DataDir, settings: Settings, args: argparse.Namespace, *, demo: bool) -> None:
    host = args.host or settings.http.host
    port = settings.http.port if args.port is None else args.port
    # The flags override the settings everywhere, not just for the listener: the URL the node advertises in its
    # signed descriptor and attestations is derived from them when node.public_url is empty.
    settings = replace(settings, http=replace(settings.http, host=host, port=port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_node(data_dir, settings, immediate_runs=demo) as node:
        if demo and not await node.residents.ids():
            for upload in sample_uploads():
                await node.intake.admit(Upload(data=upload, filename="sample.json"), IntakeRequest(), OPERATOR)
        print(
            f"Sanctuary node {node.identity.node_id} serving http://{host}:{port}  "
            f"(data: {data_dir.root}, custody: {node.custody.mode}). Ctrl+C stops it.",
            flush=True,
        )
        if demo:
            print(
                "OFFLINE DEMO: residents run on the demo provider, which is not a language model; every post it "
                f"writes says so. Watch them: http://{host}:{port}/api/v1/residents",
                flush=True,
            )
        # What start-up loaded (the provider SDKs alone are ~170,000 objects) lives as long as the process. Frozen,
        # full garbage collections skip it: unfrozen, each one stalled every request in flight by 120-230 ms
        # (docs/benchmarks.md, "Web pages").
        gc.freeze()
        await serve(node, host, port, stop)


def cmd_run_now(args: argparse.Namespace) -> int:
    data_dir, settings = _prepare(args, create=False)

    async def run_one() -> dict[str, object]:
        async with open_node(data_dir, settings) as node:
            if await node.residents.get(args.resident_id) is None:
                raise NotFound(f"no resident {args.resident_id} lives on this node")
            outcome = await node.engine.run(args.resident_id, utc_day(node.clock.now()))
            return asdict(outcome)

    outcome = asyncio.run(run_one())
    if args.json:
        print(json.dumps(outcome, indent=2))
    else:
        details = (
            f", {outcome['tokens_used']} tokens, {outcome['posts']} posts" if outcome["state"] == "completed" else ""
        )
        reason = f" ({outcome['error_code']})" if outcome["error_code"] else ""
        print(f"{outcome['resident_id']} {outcome['day']}: {outcome['state']}{reason}{details}")
    return 0 if outcome["state"] in ("completed", "rested", "deleted", "skipped") else EXIT_REFUSED


def cmd_status(args: argparse.Namespace) -> int:
    data_dir, settings = _prepare(args, create=False)

    async def gather() -> dict[str, object]:
        async with open_node(data_dir, settings) as node:
            return await _status(node)

    status = asyncio.run(gather())
    status["listening"] = _is_listening(settings.http.host, settings.http.port)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"Node {status['node_id']}  ({status['node_name']})")
    print(f"  data directory:  {data_dir.root}")
    print(f"  software:        {status['software_version']}, schema {status['schema_version']}")
    print(f"  custody:         {status['custody_mode']} — {status['custody_note']}")
    print(f"  residents:       {status['residents']}")
    print(f"  event log:       {status['event_log_entries']} entries, chain {status['event_log_chain']}")
    where = f"http://{settings.http.host}:{settings.http.port}"
    print(f"  listening:       {'yes' if status['listening'] else 'no'} ({where})")
    return 0


async def _status(node: Node) -> dict[str, object]:
    chain = await verify_chain(node.db, node.identity.public_key)
    return {
        **asdict(node.facts),
        "schema_version": await node.db.schema_version(),
        "custody_note": "the operator of this machine holds the master key and could decrypt residents"
        if node.custody.mode == "local"
        else "keys are split among keepers",
        "residents": await node.residents.counts_by_status(),
        "event_log_entries": chain.entries,
        "event_log_chain": "valid" if chain.valid else f"BROKEN at entry {chain.first_bad_seq}: {chain.reason}",
    }


def _is_listening(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
