"""`ftm-node restore list` (what the keepers hold for the old host), `ftm-node restore run` (restore it, with
the old host's key file or a disaster claim) and `ftm-node restore retire` (the old host's copies destroyed, on
the disaster path, once what lives here is committed at this node's keepers); docs/custody.md, "Restore". Part of
`ftm.node.restorecli`."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ftm.federation.identity import load_node_identity
from ftm.keeper.protocol import Purpose
from ftm.node.app import Node, open_node
from ftm.node.commandline import EXIT_OK, EXIT_REFUSED, Prepare
from ftm.node.errors import ConfigurationError
from ftm.node.keeperclient import KeeperAddress, KeeperClient
from ftm.node.restore import create_restorer
from ftm.node.restoreaddresses import keeper_client, key_hex, named_keepers
from ftm.node.restoreclaimcli import read_claim_file
from ftm.node.restorefetch import Grant, Survey, retire_old_epochs, survey
from ftm.node.restoreoutcome import Outcome
from ftm.node.restoreoutput import MiB, Printer, survey_json, survey_line
from ftm.node.restoreretire import committed_here, displaced_receipts, retire_displaced
from ftm.node.store.restores import RestoreStore


def cmd_list(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    old_host = key_hex(args.old_host, "--old-host")

    async def act() -> tuple[Survey, list[KeeperAddress]]:
        async with open_node(data_dir, settings) as node:
            client = keeper_client(node, node.identity.key.seed)
            try:
                keepers = await named_keepers(client, args)
                return await survey(client, keepers, old_host), keepers
            finally:
                await client.close()

    found, keepers = asyncio.run(act())
    if args.json:
        print(json.dumps(survey_json(found, old_host, keepers), indent=2))
        return EXIT_OK
    print(survey_line(found, old_host, keepers))
    for rid, copies in found.residents.items():
        best = copies[0]
        print(f"  {rid}  epoch {best.epoch}  {best.length / MiB:.1f} MiB  held by {len(best.holders)} keepers")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    old_key = None
    if args.old_node_key is not None:
        old_key = load_node_identity(args.old_node_key).key  # KeyFileError: exit 2, with the reason
    claim = read_claim_file(args.claim) if args.claim is not None else None
    say = Printer(quiet=args.json)

    async def act() -> dict[str, Any]:
        async with open_node(data_dir, settings) as node:
            if claim is not None and claim.terms.new_host_key != node.identity.public_key:
                raise ConfigurationError("this claim names another node as the new host; run it there")
            if old_key is not None and old_key.public_key == node.identity.public_key:
                raise ConfigurationError("--old-node-key is this node's own key: nothing to restore from")
            signer = old_key.seed if old_key is not None else node.identity.key.seed
            client = keeper_client(node, signer)
            try:
                keepers = await named_keepers(client, args)
                only = frozenset(args.resident) if args.resident else None
                if claim is not None:
                    old_host, purpose, claim_id = claim.terms.old_host_key, Purpose.DISASTER, claim.id
                    only = only or frozenset(claim.terms.resident_ids)  # the keepers release only what it names
                else:
                    assert old_key is not None
                    old_host, purpose, claim_id = old_key.public_key, Purpose.RUN, b""
                found = await survey(client, keepers, old_host)
                say(survey_line(found, old_host, keepers))
                restorer = create_restorer(node)
                with restorer.exclusive():
                    grant = Grant(client, purpose.value, claim_id)
                    outcomes = await restorer.restore(found, grant, old_host, only=only, on_step=say.step)
                retired: dict[str, Any] = {"old_epochs_destroyed": 0, "old_epochs_waiting": []}
                if old_key is not None:  # the old host's epochs of what now lives here: destroyed, signed as it
                    restored = [c for o in outcomes if o.state == "restored" for c in found.residents[o.resident_id]]
                    retired["old_epochs_destroyed"] = await retire_old_epochs(client, restored, int(node.clock.now()))
                else:  # signed by this node, the claim's new host, once what lives here is committed at keepers
                    here = [o.resident_id for o in outcomes if o.state in ("restored", "already_here")]
                    retired = await _retire(node, client, found, here)
                return {
                    **survey_json(found, old_host, keepers),
                    "purpose": purpose.value,
                    "claim_id": claim_id.hex(),
                    "outcomes": [asdict(o) for o in outcomes],
                    **retired,
                }
            finally:
                await client.close()

    report = asyncio.run(act())
    outcomes = [Outcome(**o) for o in report["outcomes"]]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        counts = {state: sum(1 for o in outcomes if o.state == state) for state in ("restored", "already_here")}
        failed = len(outcomes) - sum(counts.values())
        print(f"Restored {counts['restored']}, already here {counts['already_here']}, not restored {failed}.")
        _print_retired(report)
        if failed:
            print("Not restored:")
            for outcome in outcomes:
                if outcome.state not in counts:
                    print(f"  {outcome.resident_id}: {outcome.code}: {outcome.message}")
    return EXIT_OK if all(o.state in ("restored", "already_here") for o in outcomes) else EXIT_REFUSED


def cmd_retire(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    claim = read_claim_file(args.claim)

    async def act() -> dict[str, Any]:
        async with open_node(data_dir, settings) as node:
            if claim.terms.new_host_key != node.identity.public_key:
                raise ConfigurationError("this claim names another node as the new host; retire from there")
            client = keeper_client(node, node.identity.key.seed)
            try:
                keepers = await named_keepers(client, args)
                found = await survey(client, keepers, claim.terms.old_host_key)
                return await _retire(node, client, found, claim.terms.resident_ids)
            finally:
                await client.close()

    report = asyncio.run(act())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_retired(report)
        if not report["old_epochs_destroyed"] and not report["old_epochs_waiting"]:
            print("Nothing of the old host's is left at these keepers for the residents that live here.")
    return EXIT_REFUSED if report["old_epochs_refused"] else EXIT_OK


async def _retire(node: Node, client: KeeperClient, found: Survey, residents: Sequence[str]) -> dict[str, Any]:
    """The old host's epochs of the residents that live here, destroyed at every keeper that lists them, for
    those whose epoch here is committed at this node's keepers (the others wait: docs/custody.md, step 7)."""
    receipts: list[str] = []
    waiting: list[str] = []
    refused: dict[str, str] = {}
    for rid in residents:
        record = await node.residents.get(rid)
        copies = found.residents.get(rid, [])
        if record is None or record.status != "active" or not copies:
            continue
        if not await committed_here(node.custody_parts.store, rid, record.key_epoch):
            waiting.append(rid)
            continue
        done = await retire_displaced(client, rid, copies, int(node.clock.now()))
        await RestoreStore(node.db).keep_displaced_receipts(displaced_receipts(done, int(node.clock.now())))
        receipts += [r.raw.hex() for r in done.receipts]
        refused.update({f"{rid} at {place}": code for place, code in done.refused.items()})
    return {
        "old_epochs_destroyed": len(receipts),
        "old_epochs_waiting": waiting,
        "old_epochs_refused": refused,
        "receipts": receipts,
    }


def _print_retired(report: dict[str, Any]) -> None:
    if report["old_epochs_destroyed"]:
        print(
            f"The old host's copies at the keepers: {report['old_epochs_destroyed']} destroyed (moved), receipts kept."
        )
    if report["old_epochs_waiting"]:
        print(
            f"The old host's copies of {len(report['old_epochs_waiting'])} residents stay until their epoch here is"
            " committed at this node's keepers; then: ftm-node restore retire --claim FILE --keeper URL …"
        )
    for place, code in report.get("old_epochs_refused", {}).items():
        print(f"  not destroyed: {place}: {code}")
