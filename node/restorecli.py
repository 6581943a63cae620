"""`ftm-node restore …`: bring residents back from their keepers onto this node after the node that hosted them
was lost (docs/custody.md, "Restore"; README, "Restoring a node from its keepers").

    list          what the keepers hold for the old host (changes nothing)
    run           restore every resident they hold (or those a claim names): with the old host's key file
                  (`--old-node-key`, release rule R1, inside each resident's run window) or a disaster claim
                  (`--claim`, rule R3, after its waiting period); resumable after a crash with the same claim
    retire        after a disaster restore: the old host's copies destroyed at the keepers (signed receipts),
                  once the residents' epochs here are committed at this node's keepers
    claim         write a disaster claim: this node as the new host of the old host's residents
    sign          a guardian signs a claim file (on the guardian's machine: no node needed)
    submit        send a signed claim to the keepers; its waiting period starts
    guardian-key  `new FILE`: make a guardian key, print its public key for the old host's `[custody] guardians`

Exit codes: 0 done (every resident restored or already here; a claim accepted by at least one keeper); 1 the
keepers or the checks refused something (each refusal is named); 2 usage, configuration or unreadable files.
Kept apart from `ftm.node.cli` so that module stays one concept; `cli` mounts this command. This module builds
the parser; the commands are `ftm.node.restorerun` (list, run) and `ftm.node.restoreclaimcli` (claim, sign,
submit, guardian-key), over `ftm.node.restoreaddresses` (which keepers) and `ftm.node.restoreoutput` (what is
printed).
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from ftm.node.commandline import EXIT_CONFIG, Prepare
from ftm.node.restoreaddresses import add_keeper_options
from ftm.node.restoreclaimcli import cmd_claim, cmd_guardian_key, cmd_sign, cmd_submit
from ftm.node.restorerun import cmd_list, cmd_retire, cmd_run


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
              ftm-node restore retire --claim lumen.claim --keepers-file keepers.txt  # once delivered here
            """
        ),
    )
    actions = restore.add_subparsers(title="actions", metavar="ACTION")

    listing = actions.add_parser("list", parents=[common], help="what the keepers hold for the old host")
    add_keeper_options(listing)
    listing.add_argument("--old-host", required=True, metavar="HEX", help="the lost node's public key (64 hex)")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(command_func=lambda args: cmd_list(args, prepare))

    run = actions.add_parser("run", parents=[common], help="restore the residents the keepers hold")
    add_keeper_options(run)
    how = run.add_mutually_exclusive_group(required=True)
    how.add_argument("--old-node-key", type=Path, metavar="FILE", help="the lost node's key file (node.key)")
    how.add_argument("--claim", type=Path, metavar="FILE", help="a disaster claim submitted and past its wait")
    run.add_argument("--resident", action="append", default=[], metavar="ID", help="only this resident (repeat)")
    run.add_argument("--json", action="store_true", help="print the outcome as JSON (no progress lines)")
    run.set_defaults(command_func=lambda args: cmd_run(args, prepare))

    retire = actions.add_parser(
        "retire", parents=[common], help="after a disaster restore: have the old host's copies destroyed"
    )
    add_keeper_options(retire)
    retire.add_argument("--claim", type=Path, required=True, metavar="FILE", help="the disaster claim restored under")
    retire.add_argument("--json", action="store_true", help="print as JSON (with the signed receipts, in hex)")
    retire.set_defaults(command_func=lambda args: cmd_retire(args, prepare))

    claim = actions.add_parser("claim", parents=[common], help="write a disaster claim for guardians to sign")
    add_keeper_options(claim, required=False)
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
    add_keeper_options(submit)
    submit.add_argument("--json", action="store_true", help="print as JSON")
    submit.set_defaults(command_func=lambda args: cmd_submit(args, prepare))

    guardian = actions.add_parser("guardian-key", help="make a guardian key (`new FILE`)")
    guardian.add_argument("verb", choices=("new",))
    guardian.add_argument("file", type=Path, metavar="FILE")
    guardian.set_defaults(command_func=cmd_guardian_key)
    restore.set_defaults(command_func=lambda args: _usage(restore))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_CONFIG
