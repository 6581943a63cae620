"""`ftm-node moves …`: the operator's view of residents moving away from this node and to it, and a way to waive
a move's backoff after fixing what held it up (a destination that was down, a full disk).

An operator cannot start or stop a move: that is the resident's choice (`request_move`), and a move the
destination refuses ends by itself. Kept apart from `ftm.node.cli` so that module stays one concept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import textwrap
from datetime import UTC, datetime
from typing import Any

from ftm.federation.identity import derive_id
from ftm.node.app import open_node
from ftm.node.commandline import EXIT_REFUSED, Prepare
from ftm.node.store.moves import PENDING_OUT, MoveIn, MoveOut

LISTED = 50


def add_moves_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser, prepare: Prepare
) -> None:
    moves = commands.add_parser(
        "moves",
        parents=[common],
        help="list residents moving to or from this node; retry a stalled move now",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Moves out of this node run requested → accepted → prepared → committed → done, or end as refused
            (the destination said no) or aborted (it could not be reached for moves.give_up_seconds); a move
            that fails for outside reasons is retried every moves.retry_seconds. Moves into this node run
            accepted → staged → active, or refused. The states are explained in docs/federation-moves.md.

              ftm-node moves list
              ftm-node moves retry 3f2a…   # the move's id, as `list` prints it
            """
        ),
    )
    actions = moves.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help=f"the newest {LISTED} moves each way")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(command_func=lambda args: cmd_list(args, prepare))
    retry = actions.add_parser(
        "retry", parents=[common], help="make a move out that is still under way due now (the running node acts)"
    )
    retry.add_argument("move_id", metavar="MOVE_ID", help="the move's id (hex), as `ftm-node moves list` prints it")
    retry.set_defaults(command_func=lambda args: cmd_retry(args, prepare))
    moves.set_defaults(command_func=lambda args: _usage(moves))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def cmd_list(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)

    async def gather() -> tuple[list[MoveOut], list[MoveIn]]:
        async with open_node(data_dir, settings) as node:
            return await node.moves.store.recent_out(LISTED), await node.moves.store.recent_in(LISTED)

    out, into = asyncio.run(gather())
    if args.json:
        print(json.dumps({"out": [_out_json(m) for m in out], "in": [_in_json(m) for m in into]}, indent=2))
        return 0
    if not out and not into:
        print("No resident has moved to or from this node.")
        return 0
    if out:
        print("Moving away")
        for move in out:
            why = f"  ({move.reason})" if move.reason else ""
            due = f"  tries {move.tries}, next {_when(move.next_try_at)}" if move.state in PENDING_OUT else ""
            print(
                f"  {move.id.hex()}  {_when(move.created_at)}  {move.state:<9}  {move.resident_id} → "
                f"{move.destination_url}{why}{due}"
            )
    if into:
        print("Arriving")
        for arrival in into:
            why = f"  ({arrival.reason})" if arrival.reason else ""
            source = derive_id("node", arrival.source_key)
            print(
                f"  {arrival.id.hex()}  {_when(arrival.created_at)}  {arrival.state:<9}  {arrival.resident_id} ← "
                f"{source}{why}"
            )
    return 0


def cmd_retry(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    try:
        move_id = bytes.fromhex(args.move_id.strip())
    except ValueError:
        move_id = b""
    if len(move_id) != 16:
        print(f"{args.move_id!r} is not a move id; `ftm-node moves list` prints them (32 hex digits).")
        return EXIT_REFUSED

    async def act() -> bool:
        async with open_node(data_dir, settings) as node:
            return await node.moves.store.hurry_out(move_id, int(node.clock.now()))

    if not asyncio.run(act()):
        print(f"No move out with id {args.move_id} is under way (see `ftm-node moves list`).")
        return EXIT_REFUSED
    print(f"Move {args.move_id} is due now: the running node tries it on its next round (every moves.retry_seconds).")
    return 0


def _out_json(move: MoveOut) -> dict[str, Any]:
    return {
        "id": move.id.hex(),
        "resident_id": move.resident_id,
        "destination_url": move.destination_url,
        "destination_node_id": derive_id("node", move.destination_key),
        "state": move.state,
        "reason": move.reason,
        "attempt": move.attempt,
        "tries": move.tries,
        "created": _when(move.created_at),
        "next_try": _when(move.next_try_at) if move.state in PENDING_OUT else None,
    }


def _in_json(move: MoveIn) -> dict[str, Any]:
    return {
        "id": move.id.hex(),
        "resident_id": move.resident_id,
        "source_node_id": derive_id("node", move.source_key),
        "state": move.state,
        "reason": move.reason,
        "package_bytes": move.package_bytes,
        "created": _when(move.created_at),
        "updated": _when(move.updated_at),
    }


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")
