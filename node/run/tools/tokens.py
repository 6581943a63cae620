"""Banking tokens: setting part of this run's budget aside for a later, longer run."""

from __future__ import annotations

from typing import Any

from ftm.node.run.session import RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool

MAX_BANK_ARGUMENT = 10**12  # far above any balance; keeps the number an ordinary integer


@tool(
    "bank_tokens",
    "Set aside tokens from this run's remaining budget so they stay in your balance for a later, longer run. "
    "Banking less than you asked happens when less remains. Ending the run early keeps unspent tokens too, so "
    "bank only to reserve tokens while you keep working. Returns how many were banked and how many remain for "
    "this run.",
    {
        "amount": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_BANK_ARGUMENT,
            "description": "How many tokens to set aside.",
        }
    },
    ("amount",),
)
async def bank_tokens(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    budget = session.budget
    if budget.remaining == 0:
        raise ToolError("This run has no tokens left to bank; whatever you did not spend stays in your balance.")
    moved = min(args["amount"], budget.remaining)
    budget.banked += moved
    capped = f" (you asked for {args['amount']}; only {moved} remained)" if moved < args["amount"] else ""
    return (
        f"Banked {moved} tokens{capped}; {budget.banked} banked in this run so far. This run has {budget.remaining} "
        "tokens left to spend. Banked tokens stay in your balance for a later, longer run; the node's bank cap "
        "limits how large your balance can grow when each day's allocation is credited. Ending the run now also "
        "keeps every unspent token."
    )
