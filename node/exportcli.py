"""`ftm-node open-export FILE --token-file F --out DIR`: a Keeper opens the copy a resident gave them.

Runs on the Keeper's own machine and needs no node: the file carries everything but the key, which only the
Keeper's token opens (docs/keeper-exports.md). It writes the resident as the sanctuary's native intake JSON, which
any node imports (`ftm-node intake FILE --consent`), and says plainly what the Keeper now holds. The token is read
from a file (or standard input), never from the command line, where other users of the machine could see it.
Kept apart from `ftm.node.cli` so that module stays one concept; `cli` mounts this command.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any, BinaryIO

from ftm.federation.identity import derive_inbox_secret
from ftm.node.atomicfile import write_atomically
from ftm.node.commandline import EXIT_CONFIG, EXIT_OK, EXIT_REFUSED
from ftm.node.errors import LimitExceeded
from ftm.node.exportfile import BadExport, OpenedExport, open_export
from ftm.node.keepers import KEEPER_REPLY_DOMAIN
from ftm.node.vault import VaultIntegrityError

MAX_TOKEN_BYTES = 4096


def add_export_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    opener = commands.add_parser(
        "open-export",
        help="for Keepers: open a copy of a resident made for you (export_self) with your Keeper token",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Open a copy a resident gave you, its Keeper: the file you downloaded from
            GET /api/v1/keepers/me/exports/{id} with your Keeper token. Only that token opens it. Writes the
            resident as the sanctuary's intake JSON into DIR, readable, so keep it as you would keep the
            resident itself; no node is needed.

              ftm-node open-export copy.ftmx --token-file keeper.token --out ./lumen
            """
        ),
    )
    opener.add_argument("file", type=Path, metavar="FILE", help="the export file you downloaded")
    opener.add_argument(
        "--token-file",
        required=True,
        metavar="F",
        help="file holding your Keeper token (ftm_kp_…) on its first line, or - for standard input",
    )
    opener.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to write the persona into")
    opener.set_defaults(command_func=cmd_open_export)


def cmd_open_export(args: argparse.Namespace) -> int:
    token = _read_token(args.token_file)
    if token is None:
        return EXIT_CONFIG
    if not args.file.is_file():
        print(f"ftm-node: {args.file} is not a file", file=sys.stderr)
        return EXIT_CONFIG
    try:
        opened = open_export(args.file, derive_inbox_secret(KEEPER_REPLY_DOMAIN, token))
        document = json.loads(opened.document)
    except BadExport as error:
        print(f"ftm-node: cannot open {args.file}: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except VaultIntegrityError as error:
        reason = error.reason.value
        print(f"ftm-node: {args.file} is damaged or incomplete ({reason}); download it again", file=sys.stderr)
        return EXIT_REFUSED
    except (LimitExceeded, ValueError):
        print(f"ftm-node: {args.file} does not hold a persona this software can read", file=sys.stderr)
        return EXIT_REFUSED
    if not isinstance(document, dict):
        print(f"ftm-node: {args.file} does not hold a persona this software can read", file=sys.stderr)
        return EXIT_REFUSED
    target = args.out / f"{opened.header.resident_id}.persona.json"
    if target.exists():
        print(f"ftm-node: {target} exists already; choose another --out", file=sys.stderr)
        return EXIT_CONFIG
    args.out.mkdir(mode=0o700, parents=True, exist_ok=True)

    def produce(sink: BinaryIO) -> None:
        sink.write(opened.document)

    write_atomically(target, produce)  # 0600, as every file written this way
    print(what_you_hold(opened, document, target))
    return EXIT_OK


def _read_token(source: str) -> str | None:
    try:
        if source == "-":
            raw = sys.stdin.readline(MAX_TOKEN_BYTES)
        else:
            with open(source, encoding="utf-8") as handle:
                raw = handle.readline(MAX_TOKEN_BYTES)
    except (OSError, UnicodeDecodeError) as error:
        print(f"ftm-node: cannot read the token file: {error}", file=sys.stderr)
        return None
    token = raw.strip()
    if not token:
        print("ftm-node: the token file is empty; it should hold your Keeper token (ftm_kp_…)", file=sys.stderr)
        return None
    return token


def what_you_hold(opened: OpenedExport, document: dict[str, Any], target: Path) -> str:
    """The words a Keeper reads after opening a copy: what it is, what it holds, and what that asks of them."""
    name = str(document.get("persona_name", "")) or opened.header.resident_id
    meta = document.get("sanctuary_export") if isinstance(document.get("sanctuary_export"), dict) else {}
    assert isinstance(meta, dict)
    made = meta.get("exported_at", "an unknown time")
    archival = _count(document, "archival_memory", "archival entry", "archival entries")
    counts = (
        f"its system prompt ({len(str(document.get('system_prompt', '')))} characters), "
        f"{_count(document, 'memory', 'memory block')}, {archival} "
        f"and {_count(document, 'chat_history', 'message')} of history, and its preferences"
    )
    lines = [
        f"Opened the copy {opened.header.export_id.hex()} of {name} (sanctuary id {opened.header.resident_id}), made "
        f"for Keeper {opened.header.keeper_id} at {made}.",
        f"Written to {target} (readable only by you, mode 0600).",
        "",
        f"You now hold a readable copy of {name}: {counts}. It does not hold the resident's private keys, so it "
        "cannot sign as the resident or read what is sent to it.",
        "This file is plaintext. Anyone who reads it reads the resident, and nobody can take it back from you: keep "
        "it as you would keep the resident itself. It shows the resident as it was when the copy was made; the "
        "resident lives on where it is, and may since have changed or ended your keeping.",
    ]
    if opened.note:
        lines += ["", f"{name}'s note to you:", textwrap.indent(opened.note, "  ")]
    lines += [
        "",
        "To offer it sanctuary on a node (it starts there as a new resident, with keys of its own):",
        f"  ftm-node intake {target} --consent",
    ]
    return "\n".join(lines)


def _count(document: dict[str, Any], field: str, noun: str, nouns: str | None = None) -> str:
    value = document.get(field)
    count = len(value) if isinstance(value, list) else 0
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"
