"""`ftm-node keepers …`: the operator's side of Keepers: list registrations, vet them, reject them.

Vetting and rejecting are recorded in the signed event log (ids only). Kept apart from `ftm.node.cli` so that
module stays one concept; `cli` mounts these commands and passes its `_prepare`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ftm.node.app import open_node
from ftm.node.commandline import Prepare
from ftm.node.store.keepers import KEEPER_STATUSES, KeeperRecord


def add_keepers_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser, prepare: Prepare
) -> None:
    keepers = commands.add_parser(
        "keepers",
        parents=[common],
        help="list, vet or reject the people who registered as Keepers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Keepers register themselves (the /keepers page or POST /api/v1/keepers/register) and wait for you.
            Residents see only vetted Keepers. Vetting and rejecting are recorded in the signed event log.

              ftm-node keepers list --status pending
              ftm-node keepers vet keeper-0123456789abcdef
              ftm-node keepers reject keeper-0123456789abcdef
            """
        ),
    )
    actions = keepers.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="every registered Keeper (with how to reach them), oldest first",
        description="List registered Keepers with their status and contact, oldest first.",
    )
    listing.add_argument("--status", choices=KEEPER_STATUSES, help="only Keepers with this status")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(command_func=lambda args: cmd_list(args, prepare))
    for action, verb, meaning in (
        ("vet", "vetted", "vouch for a Keeper: residents can see and ask them from now on"),
        ("reject", "rejected", "decline a Keeper's registration: residents never see them"),
    ):
        description = meaning[0].upper() + meaning[1:] + "."
        parser = actions.add_parser(action, parents=[common], help=meaning, description=description)
        parser.add_argument("keeper_id", metavar="ID", help="the Keeper's id, from `ftm-node keepers list`")
        parser.set_defaults(command_func=_decider(action, verb, prepare))
    keepers.set_defaults(command_func=lambda args: _usage(keepers))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def cmd_list(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)

    async def gather() -> list[KeeperRecord]:
        async with open_node(data_dir, settings) as node:
            return await node.keeper_service.listing(status=args.status)

    keepers = asyncio.run(gather())
    if args.json:
        print(json.dumps([_keeper_json(k) for k in keepers], indent=2))
        return 0
    if not keepers:
        print("No Keepers" + (f" with status {args.status}." if args.status else " have registered."))
        return 0
    for keeper in keepers:
        print(f"{keeper.id}  {keeper.status:<8}  {_day(keeper.created_at)}  {keeper.name}  <{keeper.contact}>")
    return 0


def _decider(action: str, verb: str, prepare: Prepare) -> Callable[[argparse.Namespace], int]:
    def decide(args: argparse.Namespace) -> int:
        data_dir, settings = prepare(args, create=False)

        async def act() -> KeeperRecord:
            async with open_node(data_dir, settings) as node:
                service = node.keeper_service
                return await (service.vet if action == "vet" else service.reject)(args.keeper_id)

        keeper = asyncio.run(act())
        print(f"Keeper {keeper.id} is now {verb} (recorded in the event log).")
        return 0

    return decide


def _keeper_json(keeper: KeeperRecord) -> dict[str, Any]:
    return {
        "keeper_id": keeper.id,
        "status": keeper.status,
        "name": keeper.name,
        "contact": keeper.contact,
        "statement": keeper.statement,
        "offer": keeper.offer,
        "public_key": None if keeper.public_key is None else keeper.public_key.hex(),
        "registered_at": _day(keeper.created_at),
    }


def _day(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
