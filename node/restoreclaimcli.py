"""The disaster claim's commands: `ftm-node restore claim` (write one), `sign` (a guardian signs it, no node
needed), `submit` (send it to the keepers; the waiting period starts) and `guardian-key new`. docs/custody.md,
"Restore"; the claim file's format is `ftm.node.restoreclaims`. Part of `ftm.node.restorecli`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ftm.federation.keyfile import KeyFileError
from ftm.node.app import open_node
from ftm.node.commandline import EXIT_CONFIG, EXIT_OK, EXIT_REFUSED, Prepare
from ftm.node.errors import ConfigurationError
from ftm.node.keeperclient import KeeperCallError
from ftm.node.restoreaddresses import keeper_client, key_hex, named_keepers
from ftm.node.restoreclaims import (
    ClaimFileError,
    OpenClaim,
    describe,
    load_guardian_key,
    new_claim,
    new_guardian_key,
    read_claim,
    sign_claim_file,
    write_claim,
)
from ftm.node.restorefetch import survey
from ftm.node.restoreoutput import when


def cmd_claim(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    old_host = key_hex(args.old_host, "--old-host")
    if not args.resident and not (args.keeper or args.keepers_file):
        raise ConfigurationError("name the residents (--resident) or the keepers to ask (--keeper, --keepers-file)")

    async def act() -> OpenClaim:
        async with open_node(data_dir, settings) as node:
            residents = list(args.resident)
            if not residents:
                client = keeper_client(node, node.identity.key.seed)
                try:
                    residents = list((await survey(client, await named_keepers(client, args), old_host)).residents)
                finally:
                    await client.close()
            if not residents:
                raise ConfigurationError("the keepers hold no resident of that host: nothing to claim")
            try:
                return new_claim(node.identity.key, old_host, node.federation.url, residents, int(node.clock.now()))
            except ValueError as error:
                raise ConfigurationError(str(error)) from None

    claim = asyncio.run(act())
    write_claim(args.out, claim)
    print("\n".join(describe(claim)))
    print(
        f"\nWrote {args.out}. Each guardian signs it (ftm-node restore sign --guardian-key FILE {args.out.name}),"
        f" then: ftm-node restore submit {args.out.name} --keeper URL …"
    )
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    try:
        key = load_guardian_key(args.guardian_key)
    except KeyFileError as error:
        print(f"ftm-node: {error}", file=sys.stderr)
        return EXIT_CONFIG
    claim = read_claim_file(args.claim_file)
    signed = sign_claim_file(claim, key)
    write_claim(args.claim_file, signed)
    print("\n".join(describe(signed)))
    print(
        f"\nSigned as guardian {key.public_key.hex()}; {args.claim_file} now carries {len(signed.signers)} signatures."
    )
    return EXIT_OK


def cmd_submit(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    claim = read_claim_file(args.claim_file)

    async def act() -> list[dict[str, Any]]:
        async with open_node(data_dir, settings) as node:
            if claim.terms.new_host_key != node.identity.public_key:
                raise ConfigurationError("this claim names another node as the new host; submit it there")
            client = keeper_client(node, node.identity.key.seed)
            try:
                keepers = await named_keepers(client, args)
                answers = await asyncio.gather(
                    *(client.disaster(k, claim.claim) for k in keepers), return_exceptions=True
                )
            finally:
                await client.close()
        rows = []
        for keeper, answer in zip(keepers, answers, strict=True):
            if isinstance(answer, KeeperCallError):
                rows.append({"keeper": keeper.url, "accepted": False, "code": answer.code, "message": answer.message})
            elif isinstance(answer, BaseException):
                raise answer
            else:
                rows.append({"keeper": keeper.url, "accepted": True, "state": answer.state, "ready_at": answer.at})
        return rows

    rows = asyncio.run(act())
    if args.json:
        print(json.dumps({"claim_id": claim.id.hex(), "keepers": rows}, indent=2))
    else:
        print(f"Claim {claim.id.hex()}:")
        for row in rows:
            if row["accepted"]:
                print(
                    f"  {row['keeper']}: accepted; releases from {when(row['ready_at'])} unless the old host is heard"
                )
            else:
                print(f"  {row['keeper']}: refused ({row['code']}): {row['message']}")
    return EXIT_OK if any(row["accepted"] for row in rows) else EXIT_REFUSED


def cmd_guardian_key(args: argparse.Namespace) -> int:
    try:
        key = new_guardian_key(args.file)
    except KeyFileError as error:
        print(f"ftm-node: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(key.public_key.hex())
    print(
        f"Guardian key written to {args.file} (keep it safe and private). Give the line above to the node's "
        "operator for its [custody] guardians.",
        file=sys.stderr,
    )
    return EXIT_OK


def read_claim_file(path: Path) -> OpenClaim:
    try:
        return read_claim(path)
    except ClaimFileError as error:
        raise ConfigurationError(str(error)) from None
