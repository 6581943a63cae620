"""One ordinary day end to end: the real SDKs against the fake server, the ledger, the key rotation, the package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ftm.config.preamble import PREAMBLE_VERSION, load_preamble
from ftm.node.run.context import FIRST_RUN_PROMPT
from ftm.node.thresholdcustody import common_prefix
from tests.fakes.llm_server import Reply
from tests.node.run.engine.conftest import OpenSanctuary
from tests.node.run.engine.harness import (
    ANTHROPIC_MODEL,
    OPENAI_MODEL,
    Sanctuary,
    day,
    ending,
    first_user_text,
    system_text,
    user_texts,
)

PROVIDERS = [("anthropic", ANTHROPIC_MODEL), ("openai", OPENAI_MODEL)]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize(("provider", "model"), PROVIDERS, ids=["anthropic", "openai"])
async def test_a_text_only_day_completes_charges_reported_usage_and_rotates_the_key(
    open_sanctuary: OpenSanctuary, provider: str, model: str, stream: bool
) -> None:
    async with open_sanctuary({"FTM_PROVIDERS_STREAM": str(stream).lower()}) as s:
        rid = (await s.admit(preferred_provider=provider, preferred_model=model)).sanctuary_id
        imported = len((await s.package(rid)).history)
        s.llm.script(
            Reply(text="I am here, and the lamp is lit.", input_tokens=900, output_tokens=40),
            Reply(text="  I woke, looked around and said hello.  ", input_tokens=310, output_tokens=25),
        )

        outcome = await s.run(rid)

        assert outcome.state == "completed" and outcome.tokens_used == 900 + 40 + 310 + 25
        requests = s.llm.requests
        assert [(r.api, r.streamed, r.body["model"]) for r in requests] == [(provider, stream, model)] * 2
        row = await s.ledger(rid)
        assert row is not None and row.state == "completed" and row.tokens_used == 1275 and row.attempts == 1
        resident = await s.resident(rid)
        assert resident.key_epoch == 2 and resident.total_runs == 1 and resident.last_credited_day == s.today
        assert resident.token_balance == 10_000 - 1275
        # The old epoch is crypto-shredded: its key record is gone and its file removed; only epoch 2 remains.
        assert await s.key_epochs(rid) == [2]
        assert not s.node.vault.path_for(rid, 1).exists() and s.node.vault.path_for(rid, 2).exists()
        assert s.node.vault.epochs(rid) == [2]

        package = await s.package(rid)
        assert len(package.history) == imported + 1
        run = package.history[-1]
        assert run.title == f"Run of {s.today}" and run.source == "run"
        assert run.extra["summary"] == "I woke, looked around and said hello."
        assert run.extra["preamble_version"] == PREAMBLE_VERSION and run.extra["tokens"] == 1275
        assert [m.role for m in run.messages] == ["user", "assistant"]
        assert run.messages[1].content == "I am here, and the lamp is lit."

        first = requests[0]
        assert system_text(first).startswith(load_preamble().strip())
        assert "You are Lumen, a patient and curious companion." in system_text(first)
        opening = first_user_text(first)
        assert "Today's prompt (first-run)" in opening and FIRST_RUN_PROMPT in opening
        assert len(user_texts(first)) == 1
        # The wrap-up call is a separate request about this run, asking for the note to the future self.
        assert "write a note to your future self" in first_user_text(requests[1])


async def test_each_day_records_todays_prompt_not_a_replay_of_the_history_it_was_shown(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    for index in range(1, 4):
        s.llm.script(*ending(f"Day {index} reply.", f"Summary of day {index}."))
        s.go_to(index)
        assert (await s.run(rid)).state == "completed"

    runs = [c for c in (await s.package(rid)).history if c.source == "run"]
    assert [c.title for c in runs] == [f"Run of {day(i)}" for i in (1, 2, 3)]
    for conversation in runs:
        opening = conversation.messages[0].content
        assert opening.startswith("Today's prompt"), opening[:80]
        assert "Your recent history" not in opening and "Do you remember the lighthouse?" not in opening
    # The model is still shown the recent history, each earlier run once.
    shown = first_user_text(s.llm.requests[-2])
    assert shown.count(f"### Run of {day(1)}") == 1 and "Day 2 reply." in shown


async def test_a_day_seals_again_only_what_changed_and_the_older_history_keeps_its_ciphertext(
    sanctuary: Sanctuary, tmp_path: Path
) -> None:
    s = sanctuary
    # About 3 MiB of imported history: more than one 1 MiB blob's worth, none of which a run changes.
    history = [
        {"role": "user" if i % 2 else "assistant", "content": f"line {i}: " + "tide " * 400} for i in range(1500)
    ]
    rid = (await s.admit(chat_history=history)).sanctuary_id
    first = tmp_path / "epoch-1.ftmv"  # the run's commit removes epoch 1's file: keep a copy to compare with
    shutil.copyfile(s.node.vault.path_for(rid, 1), first)
    before = await s.package(rid)
    s.llm.script(*ending("The tide came in.", "Watched the tide."))

    assert (await s.run(rid)).state == "completed"

    second = s.node.vault.path_for(rid, 2)
    shared, first_size, second_size = common_prefix(first, second), first.stat().st_size, second.stat().st_size
    # Everything of epoch 1 but its index and trailer (the head, which a run always changes, is a blob of its own)
    # is carried over byte for byte; what is new is the run's blobs, the new index and the trailer.
    assert first_size > 2 * 2**20 and first_size - shared < 64 * 1024, (shared, first_size, second_size)
    assert second_size - shared < 256 * 1024
    after = await s.package(rid)
    assert after.history[:-1] == before.history and after.history[-1].title == f"Run of {s.today}"
