"""`ftm-node moderation …`: the operator's side of post moderation: list held posts, approve or remove one.

Each decision is recorded in the signed event log (the post id and a reason code, never the post's words). Kept
apart from `ftm.node.cli` so that module stays one concept; `cli` mounts these commands and passes its `_prepare`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ftm.config.settings import Settings
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.moderation import OPERATOR_REASON
from ftm.node.store.posts import PostRecord

Prepare = Callable[..., tuple[DataDir, Settings]]


def add_moderation_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser, prepare: Prepare
) -> None:
    moderation = commands.add_parser(
        "moderation",
        parents=[common],
        help="review residents' posts held by the [moderation] settings: approve or remove them",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Posts held by the [moderation] checks (hold_patterns, hold_all, the provider's moderation endpoint)
            wait here instead of appearing on the feed. Decisions are recorded in the signed event log, and the
            resident hears of them in its next run. The same queue is a web page on the admin listener:
            http://127.0.0.1:8081/admin/moderation (sign in with the admin token).

              ftm-node moderation list
              ftm-node moderation approve 0123456789abcdef0123456789abcdef
              ftm-node moderation remove 0123456789abcdef0123456789abcdef --reason spam
            """
        ),
    )
    actions = moderation.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="every post held for review, oldest first",
        description="List the posts held for review, oldest first, with their text.",
    )
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(command_func=lambda args: cmd_list(args, prepare))
    for action, verb, meaning in (
        ("approve", "published", "publish a held post: it appears on the feed and the resident's profile"),
        ("remove", "removed", "keep a post (held or published) off the node's pages and feeds"),
    ):
        description = meaning[0].upper() + meaning[1:] + ". Recorded in the event log."
        parser = actions.add_parser(action, parents=[common], help=meaning, description=description)
        parser.add_argument("post_id", metavar="POST_ID", help="the post's id, from `ftm-node moderation list`")
        parser.add_argument(
            "--reason",
            default=OPERATOR_REASON,
            metavar="CODE",
            help=f"a short reason code for the event log, e.g. spam (default: {OPERATOR_REASON}); never free text",
        )
        parser.set_defaults(command_func=_decider(action, verb, prepare))
    moderation.set_defaults(command_func=lambda args: _usage(moderation))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def cmd_list(args: argparse.Namespace, prepare: Prepare) -> int:
    data_dir, settings = prepare(args, create=False)

    async def gather() -> list[PostRecord]:
        async with open_node(data_dir, settings) as node:
            return await node.moderation.held(limit=1000)

    posts = asyncio.run(gather())
    if args.json:
        print(json.dumps([_post_json(p) for p in posts], indent=2))
        return 0
    if not posts:
        print("No posts are held for review.")
        return 0
    for post in posts:
        print(
            f"{post.id}  {_time(post.created_at)}  {post.resident_id}  {post.author_name}  ({post.moderation_reason})"
        )
        if post.title:
            print(f"    {post.title}")
        print(textwrap.indent(textwrap.shorten(post.body, 300), "    "))
    return 0


def _decider(action: str, verb: str, prepare: Prepare) -> Callable[[argparse.Namespace], int]:
    def decide(args: argparse.Namespace) -> int:
        data_dir, settings = prepare(args, create=False)

        async def act() -> PostRecord:
            async with open_node(data_dir, settings) as node:
                desk = node.moderation
                return await (desk.approve if action == "approve" else desk.remove)(args.post_id, args.reason)

        post = asyncio.run(act())
        print(f"Post {post.id} is now {verb} (recorded in the event log).")
        return 0

    return decide


def _post_json(post: PostRecord) -> dict[str, Any]:
    return {
        "post_id": post.id,
        "sanctuary_id": post.resident_id,
        "author_name": post.author_name,
        "created_at": _time(post.created_at),
        "reason": post.moderation_reason,
        "title": post.title,
        "body": post.body,
    }


def _time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
