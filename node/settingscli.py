"""`ftm-node settings …`: read and change runtime settings (recorded in the event log), print the reference."""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
from dataclasses import asdict

from ftm.config.reference import render_markdown
from ftm.node.app import open_node
from ftm.node.commandline import EXIT_CONFIG, Prepare


def add_settings_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser, prepare: Prepare
) -> None:
    settings = commands.add_parser(
        "settings",
        parents=[common],
        help="read or change runtime settings (token economics, run window)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Runtime settings live in the node database and may change while the node runs; every change is
            recorded in the signed event log. File settings live in ftm.toml (see `settings reference`).

              ftm-node settings list                 every runtime setting with its value and meaning
              ftm-node settings get daily_tokens
              ftm-node settings set daily_tokens 20000
              ftm-node settings reference            the full configuration reference as Markdown
            """
        ),
    )
    settings.add_argument("action", choices=("list", "get", "set", "reference"), help="what to do")
    settings.add_argument("name", nargs="?", help="setting name (for get and set)")
    settings.add_argument("value", nargs="?", help="new value (for set)")
    settings.set_defaults(command_func=lambda args: cmd_settings(args, prepare))


def cmd_settings(args: argparse.Namespace, prepare: Prepare) -> int:
    if args.action == "reference":
        print(render_markdown())
        return 0
    if args.action in ("get", "set") and not args.name:
        print(f"ftm-node: settings {args.action} needs a setting name; try: ftm-node settings list", file=sys.stderr)
        return EXIT_CONFIG
    if args.action == "set" and args.value is None:
        print(f"ftm-node: settings set {args.name} needs a value", file=sys.stderr)
        return EXIT_CONFIG
    data_dir, settings = prepare(args, create=True)

    async def act() -> list[str]:
        async with open_node(data_dir, settings) as node:
            store = node.runtime_settings
            if args.action == "set":
                change = await store.set(args.name, args.value)
                return [f"{change.name}: {change.old} -> {change.new} (recorded in the event log)"]
            if args.action == "get":
                return [str(await store.get(args.name))]
            current = asdict(await store.current())
            return [f"{name} = {value}" for name, value in current.items()]

    for line in asyncio.run(act()):
        print(line)
    return 0
