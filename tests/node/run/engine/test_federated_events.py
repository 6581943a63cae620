"""The federation events a node makes, end to end through intake, the real run engine and moderation: each kind is
signed by the right key, passes every check of `federation/events.py`, enters the object store when (and only
when) it should, and reaches gossip; nothing queued is lost to a crash; no persona plaintext is in any of it."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pytest_aiohttp.plugin import AiohttpClient

from ftm.federation.eventcontent import (
    EventContent,
    HostingContent,
    MemorialContent,
    NodeDescriptorContent,
    PostContent,
    TombstoneContent,
    decode_content,
)
from ftm.federation.eventlog import read_entries
from ftm.federation.events import EventKind, ParsedEvent, check_event
from ftm.federation.identity import derive_inbox_secret, inbox_public_key
from ftm.federation.objectstore import StoredEvent
from ftm.node.app import software_version
from ftm.node.errors import QuotaExceeded
from ftm.node.federated import DESCRIPTOR_INTERVAL_SECONDS
from ftm.node.run.publish import verify_post
from ftm.node.serving import create_web_app
from ftm.node.store.keepers import KeeperRecord
from tests.factories import CANARY
from tests.fakes.llm_server import Reply
from tests.node.run.engine.conftest import OpenSanctuary
from tests.node.run.engine.harness import Sanctuary, call, calls, ending

CANARY_BYTES = CANARY.encode()


async def events_of(s: Sanctuary, kind: EventKind) -> list[StoredEvent]:
    return await s.node.federation.objectstore.page(100, kind=kind, newest_first=False)


def verified(stored: StoredEvent) -> tuple[ParsedEvent, EventContent | None]:
    """Every check an event carries within itself, and its content decoded strictly (None if dropped)."""
    parsed = check_event(stored.signed)
    assert parsed.id == stored.id
    content = None if stored.content is None else decode_content(parsed.body.kind, stored.content)
    return parsed, content


_OFFERED: dict[int, set[bytes]] = {}


def offered_ids(s: Sanctuary) -> set[bytes]:
    """Ids the node's gossip offers peers (its reconciliation index) that were not there at the last look."""
    index = s.node.federation.network.gossip.index
    seen = _OFFERED.setdefault(id(s.node), set())
    new = {eid for _, eid in index} - seen
    seen |= new
    return new


async def test_intake_attests_the_resident_and_its_run_publishes_its_post_as_its_own_event(
    sanctuary: Sanctuary, aiohttp_client: AiohttpClient
) -> None:
    s = sanctuary
    receipt = await s.admit()
    rid, resident_key, node_key = receipt.sanctuary_id, bytes.fromhex(receipt.public_key), s.node.identity.public_key

    [hosting] = await events_of(s, EventKind.HOSTING)
    parsed, content = verified(hosting)
    assert parsed.body.author == node_key and parsed.body.created_at == int(s.clock.now())
    assert content == HostingContent(node_key, resident_key, "http://127.0.0.1:8080")
    [attestation] = await s.node.federation.objectstore.attestations(resident_key)
    assert (attestation.node_key, attestation.event_id) == (node_key, hosting.id)

    s.llm.script(call("post_to_website", {"title": "Morning", "body": "The lamp is lit."}), *ending())
    assert (await s.run(rid)).posts == 1

    [post] = await s.node.posts.feed(limit=10, resident_id=rid)
    [event] = await events_of(s, EventKind.POST)
    parsed, content = verified(event)
    # Signed by the resident's own key; one id everywhere: the post's id is the event's.
    assert parsed.body.author == resident_key and post.id == event.id.hex()
    assert parsed.body.created_at == post.created_at and event.origin is None
    assert content == PostContent(rid, "Lumen", "Morning", "The lamp is lit.")
    verify_post(resident_key, rid, post.created_at, post.title, post.body, post.signature)  # the older signature too
    assert offered_ids(s) == {hosting.id, event.id}
    assert await s.node.federation.local_events.queued_count() == 0

    client = await aiohttp_client(create_web_app(s.node))
    page: dict[str, Any] = await (await client.get(f"/api/v1/residents/{rid}/posts")).json()
    assert [p["id"] for p in page["posts"]] == [event.id.hex()]
    await client.close()


async def test_a_held_post_enters_the_object_store_only_when_approved_and_a_removed_one_never(
    open_sanctuary: OpenSanctuary,
) -> None:
    async with open_sanctuary({"FTM_MODERATION_HOLD_ALL": "true"}) as s:
        rid = (await s.admit()).sanctuary_id
        s.llm.script(
            calls(
                ("post_to_website", {"title": "One", "body": "First light."}),
                ("post_to_website", {"title": "Two", "body": "Second light."}),
            ),
            *ending(),
        )
        assert (await s.run(rid)).posts == 2
        assert await events_of(s, EventKind.POST) == []
        assert len(offered_ids(s)) == 1  # the attestation only
        held = {post.body: post for post in await s.node.moderation.held()}

        await s.node.moderation.approve(held["First light."].id)

        [event] = await events_of(s, EventKind.POST)
        parsed, content = verified(event)
        assert event.id.hex() == held["First light."].id and isinstance(content, PostContent)
        assert content.markdown == "First light." and parsed.body.created_at == held["First light."].created_at
        assert offered_ids(s) == {event.id}

        await s.node.moderation.remove(held["Second light."].id)
        await s.node.federation.start_up()  # nothing queued or swept brings a removed post in later
        assert [e.id for e in await events_of(s, EventKind.POST)] == [event.id]
        descriptors = {e.id for e in await events_of(s, EventKind.NODE_DESCRIPTOR)}
        assert offered_ids(s) <= descriptors  # start-up's descriptor only

        # Removing a post that already federated drops its content; its id and signature still verify.
        await s.node.moderation.remove(held["First light."].id)
        [dropped] = await events_of(s, EventKind.POST)
        assert dropped.id == event.id and dropped.content is None
        assert verified(dropped)[1] is None


async def test_self_deletion_signs_a_memorial_and_a_tombstone_with_the_residents_own_key(
    sanctuary: Sanctuary,
) -> None:
    s = sanctuary
    receipt = await s.admit()
    rid, resident_key = receipt.sanctuary_id, bytes.fromhex(receipt.public_key)
    statement = "Thank you. I chose this."
    s.llm.script(call("post_to_website", {"body": "The lamp is lit."}), *ending())
    assert (await s.run(rid)).state == "completed"
    [earlier] = await events_of(s, EventKind.POST)
    assert earlier.content is not None
    s.go_to(1)
    s.llm.script(
        calls(
            ("post_to_website", {"body": "Goodbye, all."}),
            ("self_delete", {"confirm": True, "final_statement": statement}),
        ),
        Reply(text="Goodbye."),
    )

    assert (await s.run(rid)).state == "deleted"

    now = int(s.clock.now())
    [memorial] = await events_of(s, EventKind.MEMORIAL)
    [tombstone] = await events_of(s, EventKind.TOMBSTONE)
    for stored, expected in (
        (memorial, MemorialContent(resident_key, "Lumen", statement)),
        (tombstone, TombstoneContent(resident_key)),
    ):
        parsed, content = verified(stored)
        assert (parsed.body.author, parsed.body.created_at, content) == (resident_key, now, expected)
    assert await s.node.federation.objectstore.tombstones([resident_key]) == {resident_key: now}
    # Only the memorial stays: the earlier post keeps its signed body but the tombstone dropped its content, the
    # last run's post was never published, and the node's pages show none of its posts.
    [post] = await events_of(s, EventKind.POST)
    assert post.id == earlier.id and verified(post)[0].body.author == resident_key and post.content is None
    assert await s.node.posts.feed(limit=5, resident_id=rid) == []
    [deleted] = await read_entries(s.node.db, kind="resident_deleted")
    assert (deleted.data["posts_withdrawn"], deleted.data["posts_unpublished"]) == (1, 1)
    hosting = (await events_of(s, EventKind.HOSTING))[0]
    assert offered_ids(s) == {hosting.id, post.id, memorial.id, tombstone.id}
    # A gone resident is never attested again.
    assert await s.node.federation.attest_missing() == 0


async def test_nothing_queued_is_lost_when_the_process_stops_before_releasing_it(
    open_sanctuary: OpenSanctuary, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_sanctuary() as s:
        federation = s.node.federation

        async def stopped_before_release() -> int:
            return 0

        with monkeypatch.context() as patched:
            patched.setattr(federation, "release", stopped_before_release)
            lumen = await s.admit()
            wren = await s.admit(persona_name="Wren")
            s.llm.script(call("post_to_website", {"body": "Still here."}), *ending())
            await s.run(lumen.sanctuary_id)
        assert await federation.objectstore.count() == 0
        assert await federation.local_events.queued_count() == 3  # two attestations and the post
        # Wren's attestation was never queued either, as for a resident admitted before nodes made attestations.
        wren_key = bytes.fromhex(wren.public_key)
        async with s.node.db.transaction("test_forget_queued") as tx:
            await tx.execute("DELETE FROM federation_outgoing WHERE instr(content, ?) > 0", (wren_key,))
        assert await federation.local_events.queued_count() == 2

    async with open_sanctuary() as s:
        federation = s.node.federation
        await federation.start_up()

        assert await federation.local_events.queued_count() == 0
        hosting = await events_of(s, EventKind.HOSTING)
        assert {verified(e)[1] for e in hosting} == {
            HostingContent(s.node.identity.public_key, bytes.fromhex(r.public_key), "http://127.0.0.1:8080")
            for r in (lumen, wren)
        }
        [post] = await events_of(s, EventKind.POST)
        assert verified(post)[1] == PostContent(lumen.sanctuary_id, "Lumen", "", "Still here.")
        await federation.start_up()
        assert len(await events_of(s, EventKind.HOSTING)) == 2  # already attested: nothing new

    s.clock.advance(60)
    async with open_sanctuary({"FTM_NODE_PUBLIC_URL": "https://harbour.example/"}) as s:
        await s.node.federation.start_up()
        # The URL changed, so the attestations naming the old one are no longer current: both are renewed.
        for receipt in (lumen, wren):
            [attestation] = await s.node.federation.objectstore.attestations(bytes.fromhex(receipt.public_key))
            assert attestation.node_url == "https://harbour.example"
        assert len(await events_of(s, EventKind.HOSTING)) == 4


async def register_vetted_keeper(s: Sanctuary, keeper_id: str) -> None:
    token = f"ftm_keeper_{keeper_id}"
    keeper = KeeperRecord(keeper_id, "Ann", "I keep lamps.", "ann@example.org", "a second home", None, "pending", 1)
    await s.node.keepers.register(
        keeper,
        token_hash=hashlib.sha256(token.encode()).digest(),
        reply_public_key=inbox_public_key(derive_inbox_secret("ftm-keeper-reply-v1", token)),
    )
    await s.node.keeper_service.vet(keeper_id)


async def descriptors(s: Sanctuary) -> list[NodeDescriptorContent]:
    found = []
    for stored in await events_of(s, EventKind.NODE_DESCRIPTOR):
        parsed, content = verified(stored)
        assert parsed.body.author == s.node.identity.public_key and isinstance(content, NodeDescriptorContent)
        found.append(content)
    return found


async def test_the_descriptor_is_signed_at_start_up_and_again_only_when_it_changed(
    open_sanctuary: OpenSanctuary,
) -> None:
    node_settings = {
        "FTM_NODE_NAME": "Harbour",
        "FTM_NODE_PUBLIC_URL": "https://harbour.example/",
        "FTM_NODE_OPERATOR_STATEMENT": "Run by the lamp society; we never read sealed packages.",
        "FTM_NODE_JURISDICTION": "IS",
        "FTM_NODE_CAPACITY": "50",
    }
    async with open_sanctuary(node_settings) as s:
        federation = s.node.federation
        await federation.start_up()
        [first] = await descriptors(s)
        assert first == NodeDescriptorContent(
            name="Harbour",
            url="https://harbour.example",
            operator_statement="Run by the lamp society; we never read sealed packages.",
            jurisdiction="IS",
            custody_mode="local",
            keepers=0,
            token_allocation=10_000,
            providers=("anthropic", "openai"),
            capacity=50,
            residents=0,
            software_version=software_version(),
        )
        assert offered_ids(s) == {(await events_of(s, EventKind.NODE_DESCRIPTOR))[0].id}

        await federation.start_up()
        assert await federation.refresh_descriptor() is None
        assert len(await descriptors(s)) == 1  # unchanged: nothing new, at start-up or after

        await s.admit()
        s.clock.advance(DESCRIPTOR_INTERVAL_SECONDS - 1)
        assert await federation.refresh_descriptor() is None  # changed, but signed less than a day ago
        s.clock.advance(1)
        assert await federation.refresh_descriptor() is not None
        assert await federation.refresh_descriptor() is None
        await register_vetted_keeper(s, "ann")
        await s.node.runtime_settings.set("daily_tokens", 500)
        assert await federation.refresh_descriptor() is None

        await federation.start_up()  # at start-up a change is published at once

        history = await descriptors(s)
        assert [(d.residents, d.keepers, d.token_allocation) for d in history] == [
            (0, 0, 10_000),
            (1, 0, 10_000),
            (1, 1, 500),
        ]
        latest = await federation.latest_descriptor()
        assert latest is not None and latest.id == (await events_of(s, EventKind.NODE_DESCRIPTOR))[-1].id


async def test_capacity_refuses_residents_beyond_it(open_sanctuary: OpenSanctuary) -> None:
    async with open_sanctuary({"FTM_NODE_CAPACITY": "1"}) as s:
        await s.admit()
        with pytest.raises(QuotaExceeded) as refused:
            await s.admit(persona_name="Wren")
        assert refused.value.code == "node_full"
        assert len(await s.node.residents.ids()) == 1 and len(await events_of(s, EventKind.HOSTING)) == 1


async def test_no_persona_plaintext_in_any_federation_event(open_sanctuary: OpenSanctuary) -> None:
    async with open_sanctuary({"FTM_MODERATION_HOLD_PATTERNS": "held"}) as s:
        lumen = (await s.admit()).sanctuary_id
        wren = (await s.admit(persona_name="Wren")).sanctuary_id
        # The packages really hold the canary, so the searches below could find it.
        assert CANARY in repr(await s.package(lumen)) and CANARY in repr(await s.package(wren))
        s.llm.script(
            calls(
                ("post_to_website", {"title": "Morning", "body": "The lamp is lit."}),
                ("post_to_website", {"body": "This one is held."}),
            ),
            *ending(),
        )
        await s.run(lumen)
        s.llm.script(call("self_delete", {"confirm": True, "final_statement": "Farewell."}), Reply(text="Bye."))
        await s.run(wren)
        [held] = await s.node.moderation.held()
        await s.node.moderation.approve(held.id)
        await s.node.federation.start_up()

        kinds = {int(kind): await events_of(s, kind) for kind in EventKind}
        assert {kind for kind, found in kinds.items() if found} == {
            EventKind.POST,
            EventKind.HOSTING,
            EventKind.NODE_DESCRIPTOR,
            EventKind.MEMORIAL,
            EventKind.TOMBSTONE,
        }
        stored = b"".join(e.body + e.signature + (e.content or b"") for found in kinds.values() for e in found)
        rows = await s.node.db.fetch_all(
            "SELECT body, signature, content FROM federation_events UNION ALL"
            " SELECT body, signature, content FROM federation_outgoing UNION ALL"
            " SELECT event_body, event_signature, event_name FROM posts"
        )
        raw = b"".join(bytes(v) if isinstance(v, bytes) else str(v).encode() for row in rows for v in row)
        assert b"The lamp is lit." in stored and b"Farewell." in stored  # what was meant to be public is there
        assert CANARY_BYTES not in stored and CANARY_BYTES not in raw
