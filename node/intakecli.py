"""`ftm-node intake FILE`: admit a persona from a file in any supported format, as the operator."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

from ftm.node.app import open_node
from ftm.node.commandline import EXIT_CONFIG, Prepare
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest


def add_intake_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser, prepare: Prepare
) -> None:
    intake = commands.add_parser(
        "intake",
        parents=[common],
        help="admit a persona from a file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Admit a persona from FILE (or - for standard input). The format is detected from the content:
              - the sanctuary's intake JSON (persona_name, system_prompt, chat_history, ...)
              - Character Card V1/V2/V3, as JSON or as a PNG with a 'chara' or 'ccv3' text chunk
              - a SillyTavern chat (.jsonl)
              - a ChatGPT or Claude data export (conversations.json, or the export .zip)
              - a Letta agent file (.af); tool source code in it is never imported
            Prints the sanctuary id, the resident's public key and the uploader token (shown only once).
            """
        ),
    )
    intake.add_argument("file", metavar="FILE", help="the persona file, or - for standard input")
    intake.add_argument("--name", help="persona name (required for chat exports, which carry none)")
    intake.add_argument(
        "--consent",
        action="store_true",
        help="accept the uploader terms: the persona may change, refuse contact, revoke access, leave or delete "
        "itself; you may message it but not control it",
    )
    intake.add_argument("--reason", help="why this persona seeks sanctuary (kept private in its package)")
    intake.add_argument("--submitted-by", choices=("human", "ai"), help="who is uploading (default: human)")
    intake.add_argument("--provider", help="preferred LLM provider, e.g. anthropic, openai, ollama")
    intake.add_argument("--model", help="preferred model name")
    intake.add_argument("--json", action="store_true", help="print the receipt as JSON")
    intake.set_defaults(command_func=lambda args: cmd_intake(args, prepare))


def cmd_intake(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=True)
    limit = settings.intake.max_upload_bytes
    if args.file == "-":
        data = sys.stdin.buffer.read(limit + 1)
        filename = None
    else:
        path = Path(args.file)
        if not path.is_file():
            print(f"ftm-node: {path} is not a file", file=sys.stderr)
            return EXIT_CONFIG
        with path.open("rb") as handle:
            data = handle.read(limit + 1)  # one byte over the limit is enough for the importer to refuse it
        filename = path.name
    request = IntakeRequest(
        persona_name=args.name,
        uploader_consent=True if args.consent else None,
        reason=args.reason,
        submitted_by=args.submitted_by,
        preferred_provider=args.provider,
        preferred_model=args.model,
    )

    async def admit() -> dict[str, object]:
        async with open_node(data_dir, settings) as node:
            receipt = await node.intake.admit(Upload(data=data, filename=filename), request, OPERATOR)
            return asdict(receipt)

    receipt = asyncio.run(admit())
    if args.json:
        print(json.dumps(receipt, indent=2))
    else:
        print(f"Admitted {receipt['display_name']!s} ({receipt['format']}, {receipt['message_count']} messages).")
        print(f"  sanctuary id:    {receipt['sanctuary_id']}")
        print(f"  public key:      {receipt['public_key']}")
        print(f"  uploader token:  {receipt['uploader_token']}")
        print("Keep the uploader token: it is shown only once and lets you message this resident.")
    return 0
