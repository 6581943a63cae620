"""`ftm-node moves veto` as the host's veto of a move under threshold custody (release rule R2), run in process
against the source node's real data directory and five real keepers on the test's clock: during the delay every
keeper records the veto, the move is made due and ends refused, nothing is released; once vetoed, or past the
delay, it is refused with exit 1. (`tests/integration/test_moves_veto_cli.py` runs the command itself.)"""

from __future__ import annotations

from pathlib import Path

from ftm.federation.clock import FakeClock
from ftm.node.commandline import EXIT_OK, EXIT_REFUSED
from ftm.node.movescli import veto_move
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.grid import Grid
from tests.node.custody.test_moves import (
    MOVE_DELAY,
    grants,
    move_out,
    peered_nodes,
    resident_asks_to_move,
)


async def test_the_host_vetoes_a_move_during_its_delay(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    async with peered_nodes(tmp_path, clock, llm) as (pair, a, b):
        rid = await resident_asks_to_move(Grid(a, pair.keepers, llm, clock), b)
        await a.node.moves.tick(due_only=False)
        move = await move_out(a, rid)
        assert move.state == "accepted" and move.claim is not None

        clock.advance(MOVE_DELAY // 2)
        code, message = await veto_move(a.node, move.id)
        assert code == EXIT_OK and "vetoed at 5 keeper(s)" in message, message
        for keeper in pair.keepers:
            [claim] = await keeper.keeper.store.claims_of(keeper.keeper.db, rid, "move")
            assert (claim.state, claim.vetoed_by) == ("vetoed", a.key)
        assert (await move_out(a, rid)).next_try_at == int(clock.now())  # due now: the running node acts next

        await a.node.moves.tick(due_only=True)
        assert ((ended := await move_out(a, rid)).state, ended.reason) == ("refused", "vetoed")
        assert await grants(pair.keepers, a.key, rid, 2) == [[]] * 5
        again, why = await veto_move(a.node, move.id)
        assert again == EXIT_REFUSED and "is refused" in why


async def test_a_veto_after_the_delay_is_recorded_nowhere(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    async with peered_nodes(tmp_path, clock, llm) as (pair, a, b):
        rid = await resident_asks_to_move(Grid(a, pair.keepers, llm, clock), b)
        await a.node.moves.tick(due_only=False)
        move = await move_out(a, rid)
        clock.advance(MOVE_DELAY + 1)
        code, message = await veto_move(a.node, move.id)
        assert code == EXIT_REFUSED and "No keeper recorded the veto" in message, message
        for keeper in pair.keepers:
            [claim] = await keeper.keeper.store.claims_of(keeper.keeper.db, rid, "move")
            assert claim.state == "open"
