"""`ftm-node moves …`: the operator's view of residents moving away from this node and to it, a way to waive
a move's backoff after fixing what held it up (a destination that was down, a full disk), and the host's veto of
a move under threshold custody (release rule R2: the keepers then never release the resident to the destination).

An operator cannot start a move: that is the resident's choice (`request_move`), and a move the destination
refuses ends by itself. The one stop there is, the veto, is the host's right under R2 (as it is each guardian's),
and only during the claim's delay. Kept apart from `ftm.node.cli` so that module stays one concept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import textwrap
from datetime import UTC, datetime
from typing import Any

from ftm.federation.identity import derive_id
from ftm.node.app import Node, open_node
from ftm.node.commandline import EXIT_OK, EXIT_REFUSED, Prepare
from ftm.node.movewire import MOVE_ID_BYTES
from ftm.node.store.moves import OPEN_OUT, PENDING_OUT, MoveIn, MoveOut

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
              ftm-node moves veto 3f2a…    # threshold custody: stop it at the keepers during the claim's delay
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
    veto = actions.add_parser(
        "veto",
        parents=[common],
        help="veto a move out at the resident's keepers, during its claim's delay (threshold custody)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Under threshold custody a move out rests on a claim this node and the destination signed, which
            every keeper of the resident logs; the keepers release the resident's key to the destination only
            after their delay (move_delay_seconds, a day by default), and until then this node (its host) or
            any of the resident's guardians may veto it (release rule R2, docs/custody.md). A veto is final:
            nothing is ever released under that claim, the destination refuses the move, and the resident
            stays here. Vetoing needs the keepers to be reachable and comes too late once the delay is over.

            Only moves still under way (requested, accepted, prepared) that have a claim can be vetoed; a move
            under local custody has none. Exit 0 when at least one keeper recorded the veto, 1 otherwise.

              ftm-node moves veto 3f2a…   # the move's id, as `ftm-node moves list` prints it
            """
        ),
    )
    veto.add_argument("move_id", metavar="MOVE_ID", help="the move's id (hex), as `ftm-node moves list` prints it")
    veto.set_defaults(command_func=lambda args: cmd_veto(args, prepare))
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


def _move_id(text: str) -> bytes | None:
    """The move id a command was given, or None (after saying so) if it is not one."""
    try:
        move_id = bytes.fromhex(text.strip())
    except ValueError:
        move_id = b""
    if len(move_id) != MOVE_ID_BYTES:
        print(f"{text!r} is not a move id; `ftm-node moves list` prints them ({2 * MOVE_ID_BYTES} hex digits).")
        return None
    return move_id


def cmd_retry(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    move_id = _move_id(args.move_id)
    if move_id is None:
        return EXIT_REFUSED

    async def act() -> bool:
        async with open_node(data_dir, settings) as node:
            return await node.moves.store.hurry_out(move_id, int(node.clock.now()))

    if not asyncio.run(act()):
        print(f"No move out with id {args.move_id} is under way (see `ftm-node moves list`).")
        return EXIT_REFUSED
    print(f"Move {args.move_id} is due now: the running node tries it on its next round (every moves.retry_seconds).")
    return 0


def cmd_veto(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    move_id = _move_id(args.move_id)
    if move_id is None:
        return EXIT_REFUSED

    async def act() -> tuple[int, str]:
        async with open_node(data_dir, settings) as node:
            return await veto_move(node, move_id)

    code, message = asyncio.run(act())
    print(message)
    return code


async def veto_move(node: Node, move_id: bytes) -> tuple[int, str]:
    """Veto a move out at the resident's keepers: the exit code and what to tell the operator. A veto any keeper
    recorded also makes the move due, so the running node hears `move_vetoed` and ends it at its next round."""
    shown = move_id.hex()
    move = await node.moves.store.get_out(move_id)
    if move is None:
        return EXIT_REFUSED, f"No move out with id {shown} (see `ftm-node moves list`)."
    if move.state not in OPEN_OUT:
        return EXIT_REFUSED, f"Move {shown} is {move.state}: it is no longer under way, so there is nothing to veto."
    if move.claim is None:
        return EXIT_REFUSED, (
            f"Move {shown} has no claim at keepers: only a move under threshold custody has one, from the time "
            "its destination accepted and signed it. Nothing was vetoed."
        )
    recorded = await node.moves.veto(move_id)
    if not recorded:
        ready = f" (it ends {_when(move.ready_at)} UTC)" if move.ready_at is not None else ""
        return EXIT_REFUSED, (
            f"No keeper recorded the veto of move {shown}: the claim's delay may be over{ready}, or the keepers "
            "could not be reached (the node's log names each keeper's answer). Nothing was vetoed."
        )
    await node.moves.store.hurry_out(move_id, int(node.clock.now()))
    return EXIT_OK, (
        f"Move {shown} was vetoed at {recorded} keeper(s): nothing will be released to the destination under its "
        "claim, and the running node ends the move at its next round (`ftm-node moves list` then shows it refused)."
    )


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
