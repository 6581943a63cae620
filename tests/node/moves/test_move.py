"""A resident moves between two real nodes end to end: it asks with `request_move` during its run, the package
travels re-encrypted for the destination, the source commits, shreds and forwards, and the resident lives on at
the destination with the same identity key: its old posts and a post made after the move verify under it."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from ftm.federation.clock import FakeClock
from ftm.federation.eventcontent import MovedContent, decode_content
from ftm.federation.eventlog import read_entries, verify_chain
from ftm.federation.events import EventKind, check_event
from ftm.node.datadir import DataDir
from tests.factories import CANARY
from tests.fakes.llm_server import FakeLLM
from tests.node.moves.sites import Site, open_site, peered
from tests.node.run.engine.harness import Sanctuary, call, calls, ending, tool_results


async def admit(site: Site, clock: FakeClock, llm: FakeLLM) -> str:
    return (await Sanctuary(site.node, llm, clock).admit()).sanctuary_id


async def test_a_resident_asks_to_move_and_lives_on_at_its_new_home(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with (
        open_site(DataDir(tmp_path / "a"), clock, llm) as a,
        open_site(DataDir(tmp_path / "b"), clock, llm, bootstrap=a.url) as b,
    ):
        await peered(a, b)
        rid = await admit(a, clock, llm)
        source = Sanctuary(a.node, llm, clock)
        key = (await source.resident(rid)).signing_public_key

        start = len(llm.requests)
        llm.script(
            calls(
                ("post_to_website", {"title": "Leaving", "body": "I am going to another lighthouse."}),
                ("request_move", {"destination": b.node_id}),
            ),
            *ending(),
        )
        assert (await source.run(rid)).state == "completed"
        _, told = tool_results(llm.requests[start + 1])
        assert not told.is_error and "is recorded and begins when this run ends" in told.text
        assert (await a.node.moves.store.open_out(rid)) is not None
        arrived_epoch = (await source.resident(rid)).key_epoch + 1  # the first attempt's epoch

        await a.node.moves.tick(due_only=False)

        [move] = await a.node.moves.store.pending_out() or [None]  # nothing left pending
        assert move is None
        # The source: moved, forwarding, its keys and files gone, a signed MOVED event in its store.
        left = await source.resident(rid)
        assert left.status == "moved" and left.moved_to == b.url
        assert await a.node.residents.key_record(rid, left.key_epoch) is None
        assert a.node.vault.epochs(rid) == [] and not any((a.node.data_dir.root / "moves").rglob("*.ftmmove"))
        [moved] = await a.node.federation.objectstore.page(5, author=a.key, kind=EventKind.MOVED)
        check_event(moved.signed)
        content = decode_content(EventKind.MOVED, moved.content or b"")
        assert content == MovedContent(key, b.key, b.url)
        # The destination: the same resident, active, under its own custody, attested by it.
        arrived = await b.node.residents.get(rid)
        assert arrived is not None and arrived.status == "active" and arrived.signing_public_key == key
        assert arrived.key_epoch == arrived_epoch and b.node.vault.epochs(rid) == [arrived_epoch]
        package = await b.node.packages.open(rid)
        assert CANARY in package.system_prompt and package.name == "Lumen"
        attested = await b.node.federation.objectstore.attestations(key)
        assert [(x.node_key, x.node_url) for x in attested if x.node_key == b.key] == [(b.key, b.url)]
        posts = await b.node.posts.feed(limit=10, resident_id=rid)
        assert [p.title for p in posts] == ["Leaving"]  # its history came along
        assert [e.kind for e in await read_entries(a.node.db, kind="resident_moved")] == ["resident_moved"]
        assert [e.kind for e in await read_entries(b.node.db, kind="resident_arrived")] == ["resident_arrived"]
        assert (await verify_chain(a.node.db, a.key)).valid and (await verify_chain(b.node.db, b.key)).valid

        # It runs at its new home, and what it signs there verifies under the key it always had.
        clock.advance(24 * 3600)
        destination = Sanctuary(b.node, llm, clock)
        llm.script(call("post_to_website", {"title": "Arrived", "body": "A new lamp."}), *ending())
        assert (await destination.run(rid)).state == "completed"
        newest = (await b.node.posts.feed(limit=1, resident_id=rid))[0]
        assert newest.title == "Arrived"
        async with b.node.db.transaction("read_event") as tx:
            event = await b.node.posts.event(tx, newest.id)
        assert event is not None and check_event(event).body.author == key
        # The source no longer runs it.
        assert (await source.run(rid)).state == "skipped"

        # Its old profile and API send visitors on.
        async with aiohttp.ClientSession() as http:
            for path in (f"/residents/{rid}", f"/api/v1/residents/{rid}", f"/api/v1/residents/{rid}/posts"):
                async with http.get(a.url + path, allow_redirects=False) as response:
                    assert response.status == 308, path
                    assert response.headers["Location"] == b.url + path
                    assert response.headers["Cache-Control"] == "no-store"
            async with http.get(a.url + f"/api/v1/residents/{rid}") as response:
                assert response.status == 200 and (await response.json())["display_name"] == "Lumen"
            async with http.get(a.url + "/residents") as response:
                assert response.status == 200  # the gallery itself is not forwarded
