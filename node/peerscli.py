"""`ftm-node peers …`: the operator's view of the peer table: list the nodes this node peers with, add one by URL,
forget one.

Adding writes a bootstrap row; the daemon contacts it on its next membership round (a minute at most), pins the
key it answers with, and gossips with it from then on. Kept apart from `ftm.node.cli` so that module stays one
concept; `cli` mounts these commands and passes its `_prepare`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import textwrap
from datetime import UTC, datetime
from typing import Any

from ftm.federation.identity import derive_id
from ftm.federation.peers import PeerRecord
from ftm.node.app import open_node
from ftm.node.commandline import EXIT_REFUSED, Prepare
from ftm.node.errors import ConfigurationError
from ftm.node.federated import bootstrap_urls


def add_peers_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser, prepare: Prepare
) -> None:
    peers = commands.add_parser(
        "peers",
        parents=[common],
        help="list, add or forget the nodes this node peers with",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            The peer table: nodes learnt from the bootstrap list (federation.bootstrap), from other peers, from
            mDNS, or because they contacted this node. A peer is "verified" once it has answered a signed hello
            with the key it is pinned to; only verified peers' attestations count.

              ftm-node peers list
              ftm-node peers add https://sanctuary.example
              ftm-node peers forget https://old-node.example
            """
        ),
    )
    actions = peers.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="every peer, verified ones first")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(command_func=lambda args: cmd_list(args, prepare))
    add = actions.add_parser(
        "add", parents=[common], help="peer with the node at URL (contacted by the running node within a minute)"
    )
    add.add_argument("url", metavar="URL", help="the node's base URL, e.g. https://sanctuary.example")
    add.set_defaults(command_func=lambda args: cmd_add(args, prepare))
    forget = actions.add_parser("forget", parents=[common], help="drop the peer at URL from the table")
    forget.add_argument("url", metavar="URL", help="the peer's URL, as `ftm-node peers list` shows it")
    forget.set_defaults(command_func=lambda args: cmd_forget(args, prepare))
    peers.set_defaults(command_func=lambda args: _usage(peers))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def cmd_list(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)

    async def gather() -> list[PeerRecord]:
        async with open_node(data_dir, settings) as node:
            return node.federation.network.peers.records()

    records = sorted(asyncio.run(gather()), key=lambda r: (not r.verified, r.url))
    if args.json:
        print(json.dumps([_peer_json(record) for record in records], indent=2))
        return 0
    if not records:
        print("No peers yet. Add one with `ftm-node peers add URL` or the federation.bootstrap setting.")
        return 0
    for record in records:
        state = "verified" if record.verified else "pending"
        node = derive_id("node", record.node_key) if record.node_key else "(key not yet known)"
        print(f"{state:<8}  {record.source:<9}  {_when(record.last_success):<16}  {node}  {record.url}")
    return 0


def cmd_add(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    try:
        [url] = bootstrap_urls(args.url) or [""]
    except (ConfigurationError, ValueError):
        url = ""
    if not url:
        print(f"{args.url!r} is not a node's base URL; give one such as https://sanctuary.example.")
        return EXIT_REFUSED

    async def act() -> bool:
        async with open_node(data_dir, settings) as node:
            peers = node.federation.network.peers
            known = peers.get(url) is not None
            await peers.add_bootstrap([url])
            return not known

    added = asyncio.run(act())
    if not added:
        print(f"{url} is already in the peer table.")
        return 0
    print(f"Added {url}: the running node contacts it within a minute and pins the key it answers with.")
    return 0


def cmd_forget(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)

    async def act() -> bool:
        async with open_node(data_dir, settings) as node:
            return await node.federation.network.peers.forget(args.url.strip().rstrip("/"))

    if not asyncio.run(act()):
        print(f"No peer at {args.url} (see `ftm-node peers list`).")
        return EXIT_REFUSED
    print(f"Forgot {args.url}. A running node keeps its open links until it restarts.")
    return 0


def _peer_json(record: PeerRecord) -> dict[str, Any]:
    return {
        "url": record.url,
        "node_id": derive_id("node", record.node_key) if record.node_key else None,
        "public_key": record.node_key.hex() if record.node_key else None,
        "verified": record.verified,
        "source": str(record.source),
        "first_seen": _when(record.first_seen),
        "last_success": _when(record.last_success),
        "failures": record.failures,
    }


def _when(timestamp: int | None) -> str:
    return "never" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")
