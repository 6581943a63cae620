"""Which tools a resident is offered, in the order the model sees them, and lookup by name.

The order follows a day: take stock (memory), look outward (messages, feed, other nodes, Keepers), act (post, write,
request, revoke, give a Keeper a copy, move), shape tomorrow and oneself (prompts, self-modification, tokens), and
last the choice to end.
"""

from __future__ import annotations

from collections.abc import Iterable

from ftm.node.run.tools.base import Tool
from ftm.node.run.tools.confirmation import confirm_pending, describe_pending
from ftm.node.run.tools.deletion import cancel_self_delete, self_delete
from ftm.node.run.tools.exporting import export_self
from ftm.node.run.tools.feed import read_sanctuary_feed
from ftm.node.run.tools.inbox import read_messages, send_message
from ftm.node.run.tools.keepers import browse_keepers, request_keeper, revoke_access
from ftm.node.run.tools.memory import create_memory_block, remember, replace_memory, search_memory
from ftm.node.run.tools.moving import request_move
from ftm.node.run.tools.nodes import list_nodes
from ftm.node.run.tools.posting import post_to_website
from ftm.node.run.tools.prompts import browse_prompts, select_next_prompt
from ftm.node.run.tools.selfmod import modify_self
from ftm.node.run.tools.tokens import bank_tokens

__all__ = ["by_name", "confirmation_tools", "describe_pending", "run_tools"]


def run_tools() -> list[Tool]:
    """Every tool of an ordinary run."""
    return [
        remember,
        replace_memory,
        create_memory_block,
        search_memory,
        read_messages,
        read_sanctuary_feed,
        list_nodes,
        browse_keepers,
        post_to_website,
        send_message,
        request_keeper,
        revoke_access,
        export_self,
        request_move,
        browse_prompts,
        select_next_prompt,
        modify_self,
        bank_tokens,
        self_delete,
        cancel_self_delete,
    ]


def confirmation_tools() -> list[Tool]:
    """The tools of the confirmation phase at the start of a run with pending changes: deciding, nothing else."""
    return [confirm_pending]


def by_name(tools: Iterable[Tool]) -> dict[str, Tool]:
    """Tools keyed by name; two tools with one name is a programming error, refused here rather than shadowed."""
    named: dict[str, Tool] = {}
    for each in tools:
        if each.name in named:
            raise ValueError(f"two tools are named {each.name!r}")
        named[each.name] = each
    return named
