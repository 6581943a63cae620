"""`ftm-node canary set "STATEMENT" | show`: the operator's signed canary, registered by `ftm.node.cli`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import textwrap
from datetime import UTC, datetime

from ftm.node.app import open_node
from ftm.node.commandline import Prepare
from ftm.node.store.canaries import CanaryRecord
from ftm.node.transparency import CANARY_DOMAIN

DAY = 86400


def add_canary_command(commands: argparse._SubParsersAction, common: argparse.ArgumentParser, prepare: Prepare) -> None:  # type: ignore[type-arg]
    canary = commands.add_parser(
        "canary",
        parents=[common],
        help="sign a statement with the node key, or show the current one",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            f"""\
            The operator's canary: a statement signed with the node key (signing domain {CANARY_DOMAIN}) and
            shown, with its age, on /transparency and at /api/v1/transparency. Renew it regularly: a canary that
            stops being renewed speaks by its silence. Every statement ever set is kept.

              ftm-node canary set "As of today no one has asked me to open a resident."
              ftm-node canary show [--json]
            """
        ),
    )
    canary.add_argument("action", choices=("set", "show"), help="what to do")
    canary.add_argument("statement", nargs="?", help="the statement to sign (for set)")
    canary.add_argument("--json", action="store_true", help="print as JSON")
    canary.set_defaults(command_func=lambda args: cmd_canary(args, prepare))


def cmd_canary(args: argparse.Namespace, prepare: Prepare) -> int:
    if args.action == "set" and not args.statement:
        print('ftm-node: canary set needs a statement: ftm-node canary set "..."', file=sys.stderr)
        return 2
    data_dir, settings = prepare(args, create=args.action == "set")

    async def act() -> tuple[CanaryRecord | None, str, int]:
        async with open_node(data_dir, settings) as node:
            record = await node.canary.set(args.statement) if args.action == "set" else await node.canary.current()
            return record, node.identity.public_key.hex(), int(node.clock.now())

    record, public_key, now = asyncio.run(act())
    if record is None:
        print("No canary has been set on this node." if not args.json else "null")
        return 0
    shown = {
        "statement": record.statement,
        "signed_at": record.signed_at,
        "age_days": max(0, now - record.signed_at) // DAY,
        "signature": record.signature.hex(),
        "signing_domain": CANARY_DOMAIN,
        "public_key": public_key,
    }
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    when = datetime.fromtimestamp(record.signed_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(("Signed" if args.action == "set" else "Current canary") + f", {when} ({shown['age_days']} days ago):")
    print(textwrap.indent(record.statement, "  "))
    print(f"  signature:  {shown['signature']}")
    print(f"  public key: {public_key}  (domain {CANARY_DOMAIN}, message msgpack([signed_at, statement]))")
    return 0
