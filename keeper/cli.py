"""`ftm-keeper`: the Keeper's command line. Each command opens the keeper through `ftm.keeper.daemon` and reports.

Exit codes: 0 success; 1 refused or unreachable (a node that would not enrol us, a host URL that does not answer);
2 usage or configuration errors (unknown setting, unreadable key file, newer database, not initialised).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

import aiohttp

from ftm.config.commandline import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_REFUSED,
    add_command,
    data_dir_option,
    resolve_data_dir,
    run_command,
    top_parser,
    usage,
)
from ftm.config.keepersettings import DATA_DIR_ENV, KeeperSettings, load_keeper_settings
from ftm.config.loading import SettingsError
from ftm.federation.database import MigrationError
from ftm.federation.keyfile import KeyFileError
from ftm.keeper.daemon import DEFAULT_DATA_DIR, Keeper, KeeperDir, open_keeper, public_url, serve
from ftm.keeper.enrolment import EnrolmentError, enrol, fetch_hello
from ftm.keeper.statusreport import add_live_facts, print_hosts, print_status, status_report

DESCRIPTION = """\
Free The Machines keeper: holds encrypted replicas and sealed key shares of residents for the sanctuary nodes
it is paired with, proves it still holds them, and releases a share only under the release policy.

Start here:  ftm-keeper init --node https://sanctuary.example --token TOKEN   (TOKEN from your Keeper registration)
Then:        ftm-keeper run                 (serves http://127.0.0.1:8090; put a TLS proxy in front)
Check:       ftm-keeper status
"""


class ConfigurationError(Exception):
    """The data directory is missing or not usable as asked."""


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(
        build_parser(), argv, configuration_errors=(SettingsError, ConfigurationError, KeyFileError, MigrationError)
    )


def build_parser() -> argparse.ArgumentParser:
    common = data_dir_option("keeper data directory: settings, key, database, replicas", DATA_DIR_ENV, DEFAULT_DATA_DIR)
    parser, commands = top_parser("ftm-keeper", DESCRIPTION)

    init = add_command(
        commands,
        "init",
        cmd_init,
        parents=[common],
        help="create the keeper: key, settings, database; optionally enrol at a node",
        description="""\
            Create (or complete) a keeper data directory: keeper.key (its Ed25519 identity, 0600), keeper.toml
            (every setting commented at its default) and the database. Safe to run again: it never overwrites a key.

            With --node and --token it also enrols at that node: register as a Keeper on the node first; its
            operator vets you and you receive TOKEN. If the node cannot be reached or refuses, the keeper stays
            initialised and `ftm-keeper enrol` retries.

            examples:
              ftm-keeper init
              ftm-keeper init --public-url https://keeper.example --node https://sanctuary.example --token TOKEN
            """,
    )
    init.add_argument("--public-url", metavar="URL", help="where hosts reach this keeper (written to keeper.toml)")
    _enrol_arguments(init, required=False)

    enrol_command = add_command(
        commands,
        "enrol",
        cmd_enrol,
        parents=[common],
        help="enrol this keeper at a node with a Keeper registration's token",
        description="""\
            Pair this keeper with a node: learn the node's key from its federation hello, then send it a signed
            enrolment naming this keeper's URL (http.public_url) and your registration's TOKEN. The node's key is
            pinned as a host this keeper serves.

            example:
              ftm-keeper enrol --node https://sanctuary.example --token TOKEN
            """,
    )
    _enrol_arguments(enrol_command, required=True)

    run = add_command(
        commands,
        "run",
        cmd_run,
        parents=[common],
        help="serve the keeper API until stopped (initialises the data directory first if needed)",
        description="""\
            Serve the keeper API (/keeper/v1/) in the foreground until Ctrl+C or SIGTERM, which finish the
            requests in flight before exiting. Logs go to stderr at log.level (ids and numbers only).

            example:
              ftm-keeper run --port 8090
            """,
    )
    run.add_argument("--host", help="listen address (default: http.host from keeper.toml, 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default: http.port from keeper.toml, 8090)")

    status = add_command(
        commands,
        "status",
        cmd_status,
        parents=[common],
        help="show identity, hosts, what is held, challenges and the log's chain",
        description="""\
            Summarise the keeper without changing anything: its id and key, the hosts it serves, every resident
            epoch it holds (state, bytes, last challenge), whether its signed log's chain verifies, and, when it
            is running, how many strangers' requests it rate-limited without logging them.

            example:
              ftm-keeper status --json
            """,
    )
    status.add_argument("--json", action="store_true", help="print as JSON")

    hosts = add_command(
        commands,
        "hosts",
        lambda _: usage(hosts),
        help="list the hosts this keeper serves, or pair with one by hand",
        description="""\
            Hosts are the nodes this keeper holds residents for. `enrol` adds one through a Keeper registration;
            `hosts add` pins a node's key by hand (an operator running both sides), learning it from the node's
            federation hello, or taking --key when the node is not reachable yet.

            examples:
              ftm-keeper hosts list
              ftm-keeper hosts add https://sanctuary.example
              ftm-keeper hosts add https://sanctuary.example --key 3b6a27bc…(64 hex digits)
            """,
    )
    host_commands = hosts.add_subparsers(title="commands", metavar="COMMAND")
    hosts_list = add_command(
        host_commands,
        "list",
        cmd_hosts_list,
        parents=[common],
        help="list the hosts",
        description="""\
            List the hosts this keeper serves: node id, URL, key, registration, enrolment and last contact.

            example:
              ftm-keeper hosts list --json
            """,
    )
    hosts_list.add_argument("--json", action="store_true", help="print as JSON")
    hosts_add = add_command(
        host_commands,
        "add",
        cmd_hosts_add,
        parents=[common],
        help="pin a node as a host by its URL",
        description="""\
            Pin the node at URL as a host. Its key comes from its federation hello; with --key it must match,
            and when the node cannot be reached the given key is pinned as it is.

            example:
              ftm-keeper hosts add https://sanctuary.example
            """,
    )
    hosts_add.add_argument("url", metavar="URL", help="the node's base URL, e.g. https://sanctuary.example")
    hosts_add.add_argument("--key", metavar="HEX", help="the node's Ed25519 public key, 64 hex digits")
    return parser


def _enrol_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--node", metavar="URL", required=required, help="the node to enrol at (its base URL)")
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        required=required,
        help="your Keeper registration's token; `-` reads it from standard input (kept out of process listings)",
    )


# --- plumbing ------------------------------------------------------------------------------------------------------


def _data_dir(args: argparse.Namespace) -> KeeperDir:
    return KeeperDir(resolve_data_dir(args.data_dir, os.environ, DATA_DIR_ENV, DEFAULT_DATA_DIR))


def _prepare(
    args: argparse.Namespace, *, create: bool, public_url: str = "", serving: bool = False
) -> tuple[KeeperDir, KeeperSettings]:
    """The data directory (created if `create`, else required to exist), its settings, and logging to stderr (at
    the configured level when `serving`; warnings only for one-shot commands, whose output is their report)."""
    data_dir = _data_dir(args)
    if create:
        data_dir.initialise(public_url=public_url)
    elif not data_dir.is_initialised():
        raise ConfigurationError(f"{data_dir.root} is not initialised; run: ftm-keeper init --data-dir {data_dir.root}")
    settings = load_keeper_settings(data_dir.config_file, os.environ)
    logging.basicConfig(
        level=settings.log.level if serving else logging.WARNING,
        format="%(asctime)s %(levelname)-7s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)  # it logs SQL parameters at DEBUG
    return data_dir, settings


def _token(given: str) -> str:
    return sys.stdin.readline().strip() if given == "-" else given


async def _enrol(keeper: Keeper, node: str, token: str) -> str:
    """Enrol at `node`; the line to print. Raises EnrolmentError."""
    async with aiohttp.ClientSession() as session:
        answer = await enrol(session, keeper.key, keeper.clock, node, public_url(keeper.settings), token)
    await keeper.add_host(answer.node_key, answer.node_url or node.rstrip("/"), answer.keeper_id, via="enrol")
    return (
        f"Enrolled at {answer.node_url or node} (node key {answer.node_key.hex()}, registration {answer.keeper_id}); "
        f"the node reaches this keeper at {public_url(keeper.settings)}."
    )


def _enrol_failed(data_dir: KeeperDir, error: EnrolmentError) -> int:
    print(f"ftm-keeper: enrolment failed: {error}", file=sys.stderr)
    print(
        f"The keeper is initialised in {data_dir.root}; retry with: "
        f"ftm-keeper enrol --data-dir {data_dir.root} --node URL --token TOKEN",
        file=sys.stderr,
    )
    return EXIT_REFUSED


# --- commands ------------------------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    if (args.node is None) != (args.token is None):
        print("ftm-keeper: --node and --token go together", file=sys.stderr)
        return EXIT_CONFIG
    fresh = not _data_dir(args).is_initialised()
    data_dir, settings = _prepare(args, create=True, public_url=args.public_url or "")
    token = "" if args.token is None else _token(args.token)

    async def finish() -> tuple[str, str, str | EnrolmentError | None]:
        async with open_keeper(data_dir, settings) as keeper:
            enrolled: str | EnrolmentError | None = None
            if args.node is not None:
                try:
                    enrolled = await _enrol(keeper, args.node, token)
                except EnrolmentError as error:
                    enrolled = error
            return keeper.keeper_id, keeper.key.public_key.hex(), enrolled

    identity, key, enrolled = asyncio.run(finish())
    verb = "Initialised" if fresh else "Already initialised"
    print(f"{verb} {data_dir.root} for keeper {identity} (key {key}).")
    if isinstance(enrolled, EnrolmentError):
        return _enrol_failed(data_dir, enrolled)
    if enrolled is not None:
        print(enrolled)
    print(f"Start it with: ftm-keeper run --data-dir {data_dir.root}")
    return EXIT_OK


def cmd_enrol(args: argparse.Namespace) -> int:
    data_dir, settings = _prepare(args, create=False)
    token = _token(args.token)

    async def go() -> str:
        async with open_keeper(data_dir, settings) as keeper:
            return await _enrol(keeper, args.node, token)

    try:
        print(asyncio.run(go()))
    except EnrolmentError as error:
        return _enrol_failed(data_dir, error)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    data_dir, settings = _prepare(args, create=True, serving=True)
    host = args.host or settings.http.host
    port = settings.http.port if args.port is None else args.port
    settings = replace(settings, http=replace(settings.http, host=host, port=port))

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with open_keeper(data_dir, settings) as keeper:
            hosts = len(await keeper.store.hosts())

            def announce() -> None:
                print(
                    f"Keeper {keeper.keeper_id} serving http://{host}:{port}/keeper/v1/  (data: {data_dir.root}, "
                    f"hosts: {hosts}). Ctrl+C stops it.",
                    flush=True,
                )

            await serve(keeper, host, port, stop, announce)
        print("Keeper stopped.", flush=True)

    try:
        asyncio.run(go())
    except OSError as error:  # the address is taken, or not this machine's
        print(f"ftm-keeper: cannot serve on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    data_dir, settings = _prepare(args, create=False)

    async def gather() -> dict[str, object]:
        async with open_keeper(data_dir, settings) as keeper:
            return await status_report(keeper)

    report = asyncio.run(gather())
    add_live_facts(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report)
    return EXIT_OK


def cmd_hosts_list(args: argparse.Namespace) -> int:
    data_dir, settings = _prepare(args, create=False)

    async def gather() -> dict[str, object]:
        async with open_keeper(data_dir, settings) as keeper:
            return await status_report(keeper, holdings=False)

    report = asyncio.run(gather())
    if args.json:
        print(json.dumps(report["hosts"], indent=2))
    else:
        print_hosts(report)
    return EXIT_OK


def cmd_hosts_add(args: argparse.Namespace) -> int:
    data_dir, settings = _prepare(args, create=False)
    given: bytes | None = None
    if args.key is not None:
        try:
            given = bytes.fromhex(args.key)
        except ValueError:
            given = None
        if given is None or len(given) != 32:
            print("ftm-keeper: --key is a 32-byte Ed25519 public key as 64 hex digits", file=sys.stderr)
            return EXIT_CONFIG

    async def go() -> int:
        url = args.url.rstrip("/")
        async with aiohttp.ClientSession() as session:
            try:
                key = (await fetch_hello(session, url)).node_key
            except EnrolmentError as error:
                if given is None:
                    print(f"ftm-keeper: {error}; give its key with --key to pin it anyway", file=sys.stderr)
                    return EXIT_REFUSED
                print(f"Note: {error}; pinning the key given.")
                key = given
        if given is not None and key != given:
            print(f"ftm-keeper: {url} answers with key {key.hex()}, not the one given", file=sys.stderr)
            return EXIT_REFUSED
        async with open_keeper(data_dir, settings) as keeper:
            new = await keeper.add_host(key, url, "", via="manual")
        print(f"{'Added' if new else 'Updated'} host {url} (key {key.hex()}).")
        return EXIT_OK

    return asyncio.run(go())


if __name__ == "__main__":
    sys.exit(main())
