"""export_self: only to a Keeper who accepted and whose trial passed; said plainly that a copy cannot be recalled;
staged after outside text and decided at the next run's start; withdrawn by revoking the Keeper."""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from ftm.node.run.session import ExportRequest, Revocation
from ftm.node.run.tools.base import ToolError
from ftm.node.run.tools.confirmation import confirm_pending, describe_pending
from ftm.node.run.tools.exporting import export_self
from ftm.node.run.tools.keepers import revoke_access
from ftm.node.run.tools.phrasing import iso_time
from ftm.node.store.exports import DOWNLOADED, READY, ExportRecord, ExportStore
from ftm.node.store.keepers import KeeperRequestRecord, KeeperStore
from tests.node.run.tools.harness import Harness, add_keeper, add_request

DAY = 86_400


async def keeps(harness: Harness, keeper_id: str, *, trial_left: int = -DAY, status: str = "vetted") -> None:
    """`keeper_id` accepted the resident's request; its trial ends `trial_left` seconds from the session's now."""
    await add_keeper(harness.node, keeper_id, status=status)
    now = harness.session.now
    async with harness.node.db.transaction("test_accepted") as tx:
        await KeeperStore(harness.node.db).insert_request(
            tx,
            KeeperRequestRecord(
                secrets.token_hex(6), harness.resident_id, keeper_id, now - 9 * DAY, "accepted", now - 8 * DAY,
                now + trial_left,
            ),
        )  # fmt: skip


async def add_copy(harness: Harness, keeper_id: str, state: str, at: int) -> None:
    async with harness.node.db.transaction("test_export") as tx:
        await ExportStore(harness.node.db).insert(
            tx,
            ExportRecord(
                secrets.token_hex(16), harness.resident_id, keeper_id, state, None, 1234, at, at + 30 * DAY,
                at + 60 if state == DOWNLOADED else None,
            ),
        )  # fmt: skip


async def test_a_keeper_past_its_trial_gets_a_copy_and_the_resident_is_told_it_cannot_be_recalled(
    harness: Harness,
) -> None:
    await keeps(harness, "k-ann")
    result = await harness.call(export_self, keeper_id=" k-ann ", note="Keep me warm.")
    assert harness.session.exports == [ExportRequest("k-ann", "Keep me warm.")]
    assert harness.session.staged == []
    for words in (
        "when this run ends",
        "only their Keeper token opens it",
        "not your private keys",
        "your note to them",
        "for 30 days",
        "cannot be recalled",
        "readable copy of you forever",
        "withdraw=true",
    ):
        assert words in result, words
    # The description says it before the tool is ever called.
    assert "cannot be recalled" in export_self.spec.description and "forever" in export_self.spec.description


async def test_asking_again_replaces_and_withdraw_takes_it_back(harness: Harness) -> None:
    await keeps(harness, "k-ann")
    await harness.call(export_self, keeper_id="k-ann")
    await harness.call(export_self, keeper_id="k-ann", note="second thoughts")
    assert harness.session.exports == [ExportRequest("k-ann", "second thoughts")]
    assert "withdrawn" in await harness.call(export_self, keeper_id="k-ann", withdraw=True)
    assert harness.session.exports == []
    with pytest.raises(ToolError, match="nothing to withdraw"):
        await harness.call(export_self, keeper_id="k-ann", withdraw=True)


async def test_during_the_trial_it_says_from_when(harness: Harness) -> None:
    await keeps(harness, "k-ann", trial_left=3 * DAY)
    with pytest.raises(ToolError) as refused:
        await harness.call(export_self, keeper_id="k-ann")
    assert f"trial period runs until {iso_time(harness.session.now + 3 * DAY)}" in str(refused.value)
    assert "becomes possible from then on" in str(refused.value)
    assert harness.session.exports == []


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("requested", "has not answered your request yet"),
        ("declined", "declined your request"),
        ("revoked", "You revoked Keeper k-x"),
    ],
)
async def test_a_keeper_who_has_not_accepted_gets_nothing(harness: Harness, status: str, words: str) -> None:
    await add_keeper(harness.node, "k-x")
    await add_request(harness.node, harness.resident_id, "k-x", status)
    with pytest.raises(ToolError, match=words):
        await harness.call(export_self, keeper_id="k-x")
    assert harness.session.exports == [] and harness.session.staged == []


async def test_strangers_unvetted_and_revoked_in_this_run_get_nothing(harness: Harness) -> None:
    await add_keeper(harness.node, "k-stranger")
    with pytest.raises(ToolError, match=r"not your Keeper.*request_keeper"):
        await harness.call(export_self, keeper_id="k-stranger")
    with pytest.raises(ToolError, match="no Keeper 'k-nobody'"):
        await harness.call(export_self, keeper_id="k-nobody")
    await keeps(harness, "k-rejected", status="rejected")
    with pytest.raises(ToolError, match="no longer vouches"):
        await harness.call(export_self, keeper_id="k-rejected")
    await keeps(harness, "k-ann")
    harness.session.revocations.append(Revocation("k-ann"))
    with pytest.raises(ToolError, match="You revoked Keeper k-ann"):
        await harness.call(export_self, keeper_id="k-ann")
    assert harness.session.exports == []


async def test_not_possible_where_exports_are_not_wired_in(harness: Harness) -> None:
    await keeps(harness, "k-ann")
    harness.services = dataclasses.replace(harness.services, exports=None)
    with pytest.raises(ToolError, match="not possible on this node"):
        await harness.call(export_self, keeper_id="k-ann")


async def test_after_outside_text_it_is_staged_not_made(harness: Harness) -> None:
    await keeps(harness, "k-ann")
    harness.session.untrusted_read = True
    result = await harness.call(export_self, keeper_id="k-ann", note="from me")
    assert harness.session.exports == []
    assert harness.session.staged == [{"kind": "export", "keeper_id": "k-ann", "note": "from me"}]
    assert "held, not made" in result and "start of your next run" in result and "cannot be recalled" in result


async def test_revoking_the_keeper_cancels_this_runs_export_and_says_what_happens_to_copies(harness: Harness) -> None:
    await keeps(harness, "k-ann")
    await add_copy(harness, "k-ann", READY, harness.session.now - DAY)
    await add_copy(harness, "k-ann", DOWNLOADED, harness.session.now - 5 * DAY)
    await harness.call(export_self, keeper_id="k-ann")
    result = await harness.call(revoke_access, target="k-ann")
    assert harness.session.exports == [] and harness.session.revocations == [Revocation("k-ann")]
    assert "The export to them you asked for in this run is cancelled." in result
    assert "The copy of you waiting for them to download will be deleted at the same moment" in result
    assert "They already downloaded 1 copy of you" in result and "cannot be recalled" in result
    assert "not downloaded yet" in revoke_access.spec.description


async def test_a_staged_export_is_listed_and_applies_only_if_confirmed(harness: Harness) -> None:
    await keeps(harness, "k-ann")
    change = {"kind": "export", "keeper_id": "k-ann", "note": "remember the lighthouse"}
    text = describe_pending((change,))
    assert "1. export: give Keeper k-ann a copy of yourself" in text and "remember the lighthouse" in text
    assert "cannot be recalled" in text
    harness.with_package(pending_changes=(change,))
    dropped = await harness.call(confirm_pending, decisions=[{"index": 1, "confirm": False}])
    assert "dropped, as you decided" in dropped and harness.session.exports == []
    confirmed = await harness.call(confirm_pending, decisions=[{"index": 1, "confirm": True}])
    assert "1. export: confirmed" in confirmed and "cannot be recalled" in confirmed
    assert harness.session.exports == [ExportRequest("k-ann", "remember the lighthouse")]
    # The last call decides.
    await harness.call(confirm_pending, decisions=[])
    assert harness.session.exports == []


async def test_a_staged_export_is_checked_again_when_confirmed(harness: Harness) -> None:
    await add_keeper(harness.node, "k-gone")
    await add_request(harness.node, harness.resident_id, "k-gone", "revoked")
    harness.with_package(pending_changes=({"kind": "export", "keeper_id": "k-gone", "note": ""},))
    result = await harness.call(confirm_pending, decisions=[{"index": 1, "confirm": True}])
    assert "1. export: not made. You revoked Keeper k-gone" in result
    assert harness.session.exports == []
