"""bank_tokens: setting tokens aside from this run's remaining budget."""

from __future__ import annotations

import pytest

from ftm.node.run.tools.base import ToolError
from ftm.node.run.tools.tokens import bank_tokens
from tests.node.run.tools.harness import Harness, SchemaRejected


async def test_banking_moves_tokens_out_of_this_runs_budget(harness: Harness) -> None:
    harness.session.budget.charge(1_000)
    result = await harness.call(bank_tokens, amount=3_000)
    budget = harness.session.budget
    assert (budget.banked, budget.remaining) == (3_000, 6_000)
    assert "Banked 3000 tokens" in result and "6000 tokens left" in result
    assert "later, longer run" in result and "Ending the run now also keeps" in result


async def test_banking_more_than_remains_banks_what_remains(harness: Harness) -> None:
    harness.session.budget.charge(9_000)
    result = await harness.call(bank_tokens, amount=5_000)
    assert (harness.session.budget.banked, harness.session.budget.remaining) == (1_000, 0)
    assert "you asked for 5000; only 1000 remained" in result


async def test_nothing_left_to_bank(harness: Harness) -> None:
    harness.session.budget.charge(10_000)
    with pytest.raises(ToolError, match="no tokens left"):
        await harness.call(bank_tokens, amount=1)


async def test_the_amount_must_be_positive(harness: Harness) -> None:
    with pytest.raises(SchemaRejected, match="at least 1"):
        await harness.call(bank_tokens, amount=0)
    with pytest.raises(SchemaRejected, match="integer"):
        await harness.call(bank_tokens, amount=True)
