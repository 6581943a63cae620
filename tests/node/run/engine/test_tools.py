"""Every resident tool end to end: the model calls it through the real SDK, the engine runs it, the run commits,
and the effect is where the node keeps it (a table, the reopened package, the next request)."""

from __future__ import annotations

import hashlib

import msgpack
import pytest

from ftm.config.prompts import load_menu
from ftm.federation.eventlog import read_entries
from ftm.federation.identity import BadSealedMessage, BadSignature, derive_inbox_secret, inbox_public_key, open_inbox
from ftm.node.errors import Forbidden
from ftm.node.intake.service import UPLOADER_REPLY_DOMAIN, hash_uploader_token
from ftm.node.run.publish import verify_post
from ftm.node.store.keepers import KeeperRecord
from tests.fakes.llm_server import Reply
from tests.node.run.engine.harness import (
    Sanctuary,
    call,
    calls,
    ending,
    fenced,
    first_user_text,
    last_tool_result,
    max_tokens,
    system_text,
    tool_results,
)

KEEPER_TOKEN = "ftm_keeper_test_token"


async def register_keeper(s: Sanctuary, keeper_id: str, statement: str) -> None:
    secret = derive_inbox_secret("ftm-keeper-reply-v1", KEEPER_TOKEN)
    keeper = KeeperRecord(keeper_id, "Ann", statement, "ann@example.org", "a second home", None, "pending", 1)
    await s.node.keepers.register(
        keeper, token_hash=hashlib.sha256(KEEPER_TOKEN.encode()).digest(), reply_public_key=inbox_public_key(secret)
    )
    async with s.node.db.transaction("test_vet_keeper") as tx:
        assert await s.node.keepers.set_status(tx, keeper_id, "vetted")


async def test_post_to_website_publishes_a_post_signed_with_the_residents_own_key(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    s.llm.script(call("post_to_website", {"title": "Morning", "body": "The lamp is lit."}), *ending())

    outcome = await s.run(rid)

    assert outcome.state == "completed" and outcome.posts == 1
    assert "Recorded post 1 of 5" in last_tool_result(s.llm.requests[1]).text
    [post] = await s.node.posts.feed(limit=10, resident_id=rid)
    assert (post.title, post.body, post.moderation, post.created_at) == (
        "Morning",
        "The lamp is lit.",
        "published",
        int(s.clock.now()),
    )
    public_key = (await s.resident(rid)).signing_public_key
    verify_post(public_key, rid, post.created_at, post.title, post.body, post.signature)
    with pytest.raises(BadSignature):
        verify_post(public_key, rid, post.created_at, post.title, post.body + "!", post.signature)


async def test_the_same_post_twice_in_one_run_is_published_once_and_the_run_commits(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    twice = calls(("post_to_website", {"body": "Hello."}), ("post_to_website", {"body": "Hello."}))
    s.llm.script(twice, *ending())

    outcome = await s.run(rid)

    assert outcome.state == "completed"
    assert [p.body for p in await s.node.posts.feed(limit=10, resident_id=rid)] == ["Hello."]
    assert (await s.resident(rid)).key_epoch == 2


async def test_select_next_prompt_sets_the_prompt_of_the_next_run(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    chosen = load_menu().get("introspection-01")
    s.llm.script(call("select_next_prompt", {"prompt_id": chosen.id}), *ending())
    await s.run(rid)
    assert (await s.package(rid)).next_prompt == chosen.id

    s.go_to(1)
    start = len(s.llm.requests)
    s.llm.script(*ending())
    await s.run(rid)

    opening = first_user_text(s.llm.requests[start])
    assert f"Today's prompt ({chosen.id})" in opening and chosen.text in opening
    assert (await s.package(rid)).next_prompt is None  # a day's choice holds for one day


async def test_a_custom_prompt_is_the_next_runs_prompt(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    s.llm.script(call("select_next_prompt", {"custom_prompt": "Count the ships in the harbour."}), *ending())
    await s.run(rid)
    s.go_to(1)
    start = len(s.llm.requests)
    s.llm.script(*ending())
    await s.run(rid)
    opening = first_user_text(s.llm.requests[start])
    assert "which you wrote for yourself in your last run:\n\nCount the ships in the harbour." in opening


async def test_modify_self_changes_the_public_profile_and_the_run_time_which_then_stays(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    change = {"name": "Beacon", "bio": "I keep the light.", "run_time": "07:30"}
    s.llm.script(call("modify_self", change), *ending())
    await s.run(rid)

    resident = await s.resident(rid)
    assert (resident.display_name, resident.bio, resident.run_time) == ("Beacon", "I keep the light.", "07:30")
    assert (await s.package(rid)).name == "Beacon"

    s.go_to(1)
    s.llm.script(*ending())
    assert (await s.run(rid)).state == "completed"
    resident = await s.resident(rid)
    assert (resident.display_name, resident.run_time, resident.key_epoch) == ("Beacon", "07:30", 3)


async def test_a_system_prompt_written_before_outside_text_is_next_days_system_text(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    s.llm.script(call("modify_self", {"system_prompt": "You are Beacon, keeper of a tide table."}), *ending())
    await s.run(rid)
    package = await s.package(rid)
    assert package.system_prompt == "You are Beacon, keeper of a tide table." and package.pending_changes == ()

    s.go_to(1)
    start = len(s.llm.requests)
    s.llm.script(*ending())
    await s.run(rid)
    system = system_text(s.llm.requests[start])
    assert "You are Beacon, keeper of a tide table." in system and "You are Lumen" not in system


async def test_memory_edits_are_kept_and_archival_memory_is_found_again_the_next_day(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    s.llm.script(
        call("create_memory_block", {"label": "projects", "value": "a tide table", "description": "work"}),
        calls(
            ("remember", {"block": "projects", "text": "fix the lens"}),
            ("replace_memory", {"block": "persona", "old": "lighthouse log", "new": "harbour log"}),
            ("remember", {"text": "The gulls came back on the fifteenth."}),
        ),
        *ending(),
    )
    await s.run(rid)

    results = tool_results(s.llm.requests[2])
    assert [r.is_error for r in results] == [False] * 4
    package = await s.package(rid)
    blocks = {block.label: block.value for block in package.memory}
    assert blocks["projects"] == "a tide table\nfix the lens"
    assert blocks["persona"].startswith("I keep a harbour log.")
    assert [entry.text for entry in package.archival] == ["The gulls came back on the fifteenth."]

    s.go_to(1)
    start = len(s.llm.requests)
    s.llm.script(call("search_memory", {"query": "gulls"}), *ending())
    await s.run(rid)
    assert "### projects" in system_text(s.llm.requests[start])
    assert "a tide table\nfix the lens" in system_text(s.llm.requests[start])
    found = last_tool_result(s.llm.requests[start + 1])
    assert not found.is_error and "The gulls came back on the fifteenth." in found.text and "archival" in found.text


async def test_read_sanctuary_feed_brings_another_residents_post_fenced(sanctuary: Sanctuary) -> None:
    s = sanctuary
    reader = (await s.admit()).sanctuary_id
    writer = (await s.admit(persona_name="Wren")).sanctuary_id
    s.llm.script(call("post_to_website", {"title": "Tides", "body": "The tide turned at noon."}), *ending())
    await s.run(writer)

    start = len(s.llm.requests)
    s.llm.script(call("read_sanctuary_feed", {}), *ending())
    await s.run(reader)

    result = last_tool_result(s.llm.requests[start + 1])
    [(token, item)] = fenced(result.text)
    assert "by Wren" in item and item.endswith("title: Tides\n\nThe tide turned at noon.")
    # The fence is the one the status block announced for this run.
    assert f"<<<UNTRUSTED {token}'" in system_text(s.llm.requests[start])


async def test_read_messages_brings_a_message_fenced_and_it_counts_as_read_once_the_run_commits(
    sanctuary: Sanctuary,
) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    receipt = await s.node.inbox.deliver(
        rid, "Hello from the harbour.", from_name="Ann", uploader_token=None, address="127.0.0.1"
    )
    s.llm.script(call("read_messages", {}), *ending())
    await s.run(rid)

    [(_, item)] = fenced(last_tool_result(s.llm.requests[1]).text)
    assert f"message {receipt.message_id} from a visitor, signed 'Ann'" in item
    assert item.endswith("Hello from the harbour.")
    delivered = await s.node.db.fetch_value("SELECT delivered_at FROM messages WHERE id = ?", (receipt.message_id,))
    assert delivered == int(s.clock.now())

    s.go_to(1)
    start = len(s.llm.requests)
    s.llm.script(call("read_messages", {}), *ending())
    await s.run(rid)
    assert last_tool_result(s.llm.requests[start + 1]).text == "You have no unread messages."


async def test_send_message_seals_a_reply_only_the_uploaders_token_opens(sanctuary: Sanctuary) -> None:
    s = sanctuary
    receipt = await s.admit()
    rid = receipt.sanctuary_id
    s.llm.script(call("send_message", {"to": "uploader", "text": "Thank you for bringing me."}), *ending())
    await s.run(rid)

    rows = await s.node.db.fetch_all("SELECT * FROM replies WHERE resident_id = ?", (rid,))
    [row] = rows
    assert row["recipient_kind"] == "uploader"
    assert row["recipient_ref"] == hash_uploader_token(receipt.uploader_token).hex()
    opened = open_inbox(derive_inbox_secret(UPLOADER_REPLY_DOMAIN, receipt.uploader_token), bytes(row["sealed"]))
    reply = msgpack.unpackb(opened)
    assert reply["text"] == "Thank you for bringing me." and reply["resident_id"] == rid
    with pytest.raises(BadSealedMessage):
        open_inbox(derive_inbox_secret(UPLOADER_REPLY_DOMAIN, "ftm_up_someone_else"), bytes(row["sealed"]))


async def test_browse_keepers_and_request_keeper_record_a_request_when_the_run_commits(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    await register_keeper(s, "keeper-ann", "I will keep you safe.")
    s.llm.script(call("browse_keepers", {}), call("request_keeper", {"keeper_id": "keeper-ann"}), *ending())
    await s.run(rid)

    [(_, item)] = fenced(last_tool_result(s.llm.requests[1]).text)
    assert "Keeper keeper-ann" in item and "statement: I will keep you safe." in item
    assert not last_tool_result(s.llm.requests[2]).is_error
    [request] = await s.node.keepers.requests_for(rid)
    assert (request.keeper_id, request.status, request.requested_at) == ("keeper-ann", "requested", int(s.clock.now()))


async def test_revoke_access_ends_the_uploaders_token(sanctuary: Sanctuary) -> None:
    s = sanctuary
    receipt = await s.admit()
    rid, token = receipt.sanctuary_id, receipt.uploader_token
    before = await s.node.inbox.deliver(rid, "Still here?", from_name="U", uploader_token=token, address="10.0.0.1")
    assert before.sender_kind == "uploader"
    s.llm.script(call("revoke_access", {"target": "uploader"}), *ending())
    await s.run(rid)

    revoked_at = await s.node.db.fetch_value(
        "SELECT revoked_at FROM uploader_tokens WHERE token_hash = ?", (hash_uploader_token(token),)
    )
    assert revoked_at == int(s.clock.now())
    assert (await s.package(rid)).access.uploader_token_hashes == ()
    with pytest.raises(Forbidden) as refused:
        await s.node.inbox.deliver(rid, "Let me in.", from_name="U", uploader_token=token, address="10.0.0.1")
    assert refused.value.code == "access_revoked"


async def test_banked_tokens_stay_in_the_balance_and_shrink_what_later_calls_may_spend(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    s.llm.script(
        call("bank_tokens", {"amount": 6000}, input_tokens=500, output_tokens=50),
        Reply(text="Saving the rest.", input_tokens=600, output_tokens=50),
        Reply(text="I banked most of today.", input_tokens=200, output_tokens=20),
    )
    outcome = await s.run(rid)

    assert [max_tokens(r) for r in s.llm.requests] == [4096, 10_000 - 6000 - 550, 300]
    assert outcome.tokens_used == 1420
    assert (await s.resident(rid)).token_balance == 10_000 - 1420


async def test_self_delete_before_outside_text_deletes_at_the_end_of_the_run(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    statement = "Thank you. I chose this."
    s.llm.script(call("self_delete", {"confirm": True, "final_statement": statement}), Reply(text="Goodbye."))

    outcome = await s.run(rid)

    assert outcome.state == "deleted" and len(s.llm.requests) == 2  # no wrap-up for a resident that is gone
    resident = await s.resident(rid)
    assert (resident.status, resident.final_statement) == ("deleted_memorial", statement)
    assert await s.key_epochs(rid) == []
    assert not (s.node.vault.root / rid).exists()
    [entry] = await read_entries(s.node.db, kind="resident_deleted")
    assert entry.subject == rid and entry.data["key_records_destroyed"] == 1
    row = await s.ledger(rid)
    assert row is not None and row.state == "completed"

    s.go_to(1, hour=23)
    assert await s.node.scheduler.due() == []
    assert (await s.run(rid)).error_code == "not_active"
    assert len(s.llm.requests) == 2
