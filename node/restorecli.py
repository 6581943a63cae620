"""`ftm-node restore …`: bring residents back from their keepers onto this node after the node that hosted them
was lost (docs/custody.md, "Restore"; README, "Restoring a node from its keepers").

    list          what the keepers hold for the old host (changes nothing)
    run           restore every resident they hold (or those a claim names): with the old host's key file
                  (`--old-node-key`, release rule R1, inside each resident's run window) or a disaster claim
                  (`--claim`, rule R3, after its waiting period)
    claim         write a disaster claim: this node as the new host of the old host's residents
    sign          a guardian signs a claim file (on the guardian's machine: no node needed)
    submit        send a signed claim to the keepers; its waiting period starts
    guardian-key  `new FILE`: make a guardian key, print its public key for the old host's `[custody] guardians`

Exit codes: 0 done (every resident restored or already here; a claim accepted by at least one keeper); 1 the
keepers or the checks refused something (each refusal is named); 2 usage, configuration or unreadable files.
Kept apart from `ftm.node.cli` so that module stays one concept; `cli` mounts this command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ftm.federation.identity import SigningKey, derive_id, load_node_identity
from ftm.federation.keyfile import KeyFileError
from ftm.keeper.protocol import Purpose
from ftm.node.app import Node, open_node
from ftm.node.commandline import EXIT_CONFIG, EXIT_OK, EXIT_REFUSED, Prepare
from ftm.node.errors import ConfigurationError
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.restore import Outcome, Step, create_restorer
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
from ftm.node.restorefetch import EpochCopy, Grant, Survey, retire_old_epochs, survey

MiB = 1024 * 1024
KEY_HEX_CHARS = 64


def add_restore_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser, prepare: Prepare
) -> None:
    restore = commands.add_parser(
        "restore",
        parents=[common],
        help="rebuild residents from their keepers after their node was lost (old host key or disaster claim)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Rebuild residents on this node from the keepers of a node that was lost. Every share is verified
            against its commitments, every byte of the vault file against its Merkle root, the key against the
            file's key commitment; the resident is then sealed under this node's custody.

            With the old node's key file (the keepers release inside each resident's run window):
              ftm-node restore run --old-node-key old-node.key --keeper https://k1.example --keeper …

            Without it (a disaster claim; guardians sign; the keepers wait, and any sign of life from the old
            node cancels it):
              ftm-node restore claim --old-host HEX --keepers-file keepers.txt --out lumen.claim
              ftm-node restore sign --guardian-key guardian.key lumen.claim     # each guardian, in turn
              ftm-node restore submit lumen.claim --keepers-file keepers.txt
              ftm-node restore run --claim lumen.claim --keepers-file keepers.txt   # after the waiting period
            """
        ),
    )
    actions = restore.add_subparsers(title="actions", metavar="ACTION")

    listing = actions.add_parser("list", parents=[common], help="what the keepers hold for the old host")
    _keeper_options(listing)
    listing.add_argument("--old-host", required=True, metavar="HEX", help="the lost node's public key (64 hex)")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(command_func=lambda args: cmd_list(args, prepare))

    run = actions.add_parser("run", parents=[common], help="restore the residents the keepers hold")
    _keeper_options(run)
    how = run.add_mutually_exclusive_group(required=True)
    how.add_argument("--old-node-key", type=Path, metavar="FILE", help="the lost node's key file (node.key)")
    how.add_argument("--claim", type=Path, metavar="FILE", help="a disaster claim submitted and past its wait")
    run.add_argument("--resident", action="append", default=[], metavar="ID", help="only this resident (repeat)")
    run.add_argument("--json", action="store_true", help="print the outcome as JSON (no progress lines)")
    run.set_defaults(command_func=lambda args: cmd_run(args, prepare))

    claim = actions.add_parser("claim", parents=[common], help="write a disaster claim for guardians to sign")
    _keeper_options(claim, required=False)
    claim.add_argument("--old-host", required=True, metavar="HEX", help="the lost node's public key (64 hex)")
    claim.add_argument("--resident", action="append", default=[], metavar="ID", help="claim only these (repeat)")
    claim.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write the claim file")
    claim.set_defaults(command_func=lambda args: cmd_claim(args, prepare))

    sign = actions.add_parser("sign", help="as a guardian: sign a claim file (no node needed)")
    sign.add_argument("claim_file", type=Path, metavar="CLAIMFILE")
    sign.add_argument("--guardian-key", type=Path, required=True, metavar="FILE", help="your guardian key file")
    sign.set_defaults(command_func=cmd_sign)

    submit = actions.add_parser("submit", parents=[common], help="send a signed claim to the keepers")
    submit.add_argument("claim_file", type=Path, metavar="CLAIMFILE")
    _keeper_options(submit)
    submit.add_argument("--json", action="store_true", help="print as JSON")
    submit.set_defaults(command_func=lambda args: cmd_submit(args, prepare))

    guardian = actions.add_parser("guardian-key", help="make a guardian key (`new FILE`)")
    guardian.add_argument("verb", choices=("new",))
    guardian.add_argument("file", type=Path, metavar="FILE")
    guardian.set_defaults(command_func=cmd_guardian_key)
    restore.set_defaults(command_func=lambda args: _usage(restore))


def _keeper_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--keeper", action="append", default=[], metavar="URL", help="a keeper's base URL (repeat)")
    parser.add_argument(
        "--keepers-file",
        type=Path,
        metavar="FILE",
        help="keepers, one a line: URL, optionally followed by its key in hex (otherwise asked at /healthz)",
    )
    parser.set_defaults(keepers_required=required)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_CONFIG


# --- commands ------------------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    old_host = _key_hex(args.old_host, "--old-host")

    async def act() -> tuple[Survey, list[KeeperAddress]]:
        async with open_node(data_dir, settings) as node:
            client = _client(node, node.identity.key.seed)
            try:
                keepers = await _keepers(client, args)
                return await survey(client, keepers, old_host), keepers
            finally:
                await client.close()

    found, keepers = asyncio.run(act())
    if args.json:
        print(json.dumps(_survey_json(found, old_host, keepers), indent=2))
        return EXIT_OK
    print(_survey_line(found, old_host, keepers))
    for rid, copies in found.residents.items():
        best = copies[0]
        print(f"  {rid}  epoch {best.epoch}  {best.length / MiB:.1f} MiB  held by {len(best.holders)} keepers")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    old_key = None
    if args.old_node_key is not None:
        old_key = load_node_identity(args.old_node_key).key  # KeyFileError: exit 2, with the reason
    claim = _read_claim(args.claim) if args.claim is not None else None
    say = _Printer(quiet=args.json)

    async def act() -> dict[str, Any]:
        async with open_node(data_dir, settings) as node:
            if claim is not None and claim.terms.new_host_key != node.identity.public_key:
                raise ConfigurationError("this claim names another node as the new host; run it there")
            if old_key is not None and old_key.public_key == node.identity.public_key:
                raise ConfigurationError("--old-node-key is this node's own key: nothing to restore from")
            signer = old_key.seed if old_key is not None else node.identity.key.seed
            client = _client(node, signer)
            try:
                keepers = await _keepers(client, args)
                only = frozenset(args.resident) if args.resident else None
                if claim is not None:
                    old_host, purpose, claim_id = claim.terms.old_host_key, Purpose.DISASTER, claim.id
                    only = only or frozenset(claim.terms.resident_ids)  # the keepers release only what it names
                else:
                    assert old_key is not None
                    old_host, purpose, claim_id = old_key.public_key, Purpose.RUN, b""
                found = await survey(client, keepers, old_host)
                say(_survey_line(found, old_host, keepers))
                restorer = create_restorer(node)
                with restorer.exclusive():
                    grant = Grant(client, purpose.value, claim_id)
                    outcomes = await restorer.restore(found, grant, old_host, only=only, on_step=say.step)
                retired = 0
                if old_key is not None:  # the old host's epochs of what now lives here: destroyed, signed as it
                    restored = [c for o in outcomes if o.state == "restored" for c in found.residents[o.resident_id]]
                    retired = await retire_old_epochs(client, restored, int(node.clock.now()))
                return {
                    **_survey_json(found, old_host, keepers),
                    "purpose": purpose.value,
                    "claim_id": claim_id.hex(),
                    "outcomes": [asdict(o) for o in outcomes],
                    "old_epochs_destroyed": retired,
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
        if report["old_epochs_destroyed"]:
            print(f"The old host's copies at the keepers: {report['old_epochs_destroyed']} destroyed (moved).")
        if failed:
            print("Not restored:")
            for outcome in outcomes:
                if outcome.state not in counts:
                    print(f"  {outcome.resident_id}: {outcome.code}: {outcome.message}")
    return EXIT_OK if all(o.state in ("restored", "already_here") for o in outcomes) else EXIT_REFUSED


def cmd_claim(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    old_host = _key_hex(args.old_host, "--old-host")
    if not args.resident and not (args.keeper or args.keepers_file):
        raise ConfigurationError("name the residents (--resident) or the keepers to ask (--keeper, --keepers-file)")

    async def act() -> OpenClaim:
        async with open_node(data_dir, settings) as node:
            residents = list(args.resident)
            if not residents:
                client = _client(node, node.identity.key.seed)
                try:
                    residents = list((await survey(client, await _keepers(client, args), old_host)).residents)
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
    claim = _read_claim(args.claim_file)
    signed = sign_claim_file(claim, key)
    write_claim(args.claim_file, signed)
    print("\n".join(describe(signed)))
    print(
        f"\nSigned as guardian {key.public_key.hex()}; {args.claim_file} now carries {len(signed.signers)} signatures."
    )
    return EXIT_OK


def cmd_submit(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)
    claim = _read_claim(args.claim_file)

    async def act() -> list[dict[str, Any]]:
        async with open_node(data_dir, settings) as node:
            if claim.terms.new_host_key != node.identity.public_key:
                raise ConfigurationError("this claim names another node as the new host; submit it there")
            client = _client(node, node.identity.key.seed)
            try:
                keepers = await _keepers(client, args)
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
                    f"  {row['keeper']}: accepted; releases from {_when(row['ready_at'])} unless the old host is heard"
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


# --- parts -----------------------------------------------------------------------------------------------------------


def _client(node: Node, seed: bytes) -> KeeperClient:
    return KeeperClient(SigningKey(seed), node.clock, timeout=float(node.settings.custody.request_timeout_seconds))


async def _keepers(client: KeeperClient, args: argparse.Namespace) -> list[KeeperAddress]:
    """The keepers named on the command line and in the keepers file; a key not given is asked for."""
    named: list[tuple[str, bytes | None]] = [(url, None) for url in args.keeper]
    if args.keepers_file is not None:
        named += _keepers_file(args.keepers_file)
    if not named and getattr(args, "keepers_required", True):
        raise ConfigurationError("name the keepers: --keeper URL (repeat) or --keepers-file FILE")
    urls = list(dict.fromkeys(url.rstrip("/") for url, _ in named))
    given = {url.rstrip("/"): key for url, key in named if key is not None}

    async def address(url: str) -> KeeperAddress:
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"{url!r} is not an http(s) URL")
        return KeeperAddress(given[url] if url in given else await client.keeper_key(url), url)

    found = await asyncio.gather(*(address(url) for url in urls), return_exceptions=True)
    keepers = []
    for url, result in zip(urls, found, strict=True):
        if isinstance(result, KeeperCallError):
            print(f"ftm-node: keeper {url} is left out: {result.message}", file=sys.stderr)
        elif isinstance(result, BaseException):
            raise result
        else:
            keepers.append(result)
    return keepers


def _keepers_file(path: Path) -> list[tuple[str, bytes | None]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from None
    named: list[tuple[str, bytes | None]] = []
    for number, line in enumerate(lines, start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2:
            raise ConfigurationError(f"{path}:{number}: a line is a URL, optionally followed by the keeper's key")
        named.append((words[0], _key_hex(words[1], f"{path}:{number}") if len(words) == 2 else None))
    return named


def _key_hex(text: str, what: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_HEX_CHARS // 2:
        raise ConfigurationError(f"{what}: a key is {KEY_HEX_CHARS} hex digits")
    return key


def _read_claim(path: Path) -> OpenClaim:
    try:
        return read_claim(path)
    except ClaimFileError as error:
        raise ConfigurationError(str(error)) from None


def _survey_line(found: Survey, old_host: bytes, keepers: Sequence[KeeperAddress]) -> str:
    down = f", {len(found.unreachable)} did not answer" if found.unreachable else ""
    return (
        f"Old host {derive_id('node', old_host)}: {len(found.residents)} residents held by the {len(keepers)} "
        f"keepers asked{down}."
    )


def _survey_json(found: Survey, old_host: bytes, keepers: Sequence[KeeperAddress]) -> dict[str, Any]:
    return {
        "old_host": old_host.hex(),
        "old_host_id": derive_id("node", old_host),
        "keepers": [{"url": k.url, "key": k.key.hex()} for k in keepers],
        "unreachable": found.unreachable,
        "residents": {
            rid: [
                {"epoch": c.epoch, "length": c.length, "root": c.root.hex(), "holders": len(c.holders)} for c in copies
            ]
            for rid, copies in found.residents.items()
        },
    }


def _copy_json(copy: EpochCopy) -> dict[str, Any]:
    return {"epoch": copy.epoch, "length": copy.length, "root": copy.root.hex(), "holders": len(copy.holders)}


class _Printer:
    """Progress lines: `[n/m] resident: what happens`, the download every 10 % (none with --json)."""

    def __init__(self, *, quiet: bool) -> None:
        self._quiet = quiet
        self._tenths: dict[str, int] = {}

    def __call__(self, line: str) -> None:
        if not self._quiet:
            print(line, flush=True)

    def step(self, step: Step) -> None:
        head = f"[{step.index}/{step.total}] {step.resident_id}"
        if step.stage == "replica":
            tenth = 10 * step.done // max(step.size, 1)
            if self._tenths.get(step.resident_id) == tenth:
                return
            self._tenths[step.resident_id] = tenth
            self(f"{head}: replica {step.done / MiB:.1f} of {step.size / MiB:.1f} MiB from {step.detail}")
            return
        self(f"{head}: {step.stage}: {step.detail}")


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
