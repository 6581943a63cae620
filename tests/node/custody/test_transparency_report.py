"""The public custody report on a real node and five keeper daemons: which keepers hold which residents' backups,
their proof history, and the receipts for a resident that deleted itself, in `/api/v1/transparency` (in the shape
the OpenAPI document gives) and on `/transparency`; nothing secret in either."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import aiohttp

from ftm.federation.clock import FakeClock
from ftm.node.datadir import DataDir
from ftm.node.http.apischemas import SCHEMAS
from ftm.node.transparency import CustodyReporter
from tests.factories import CANARY
from tests.fakes.llm_server import FakeLLM, Reply
from tests.node.custody.grid import Grid, custody_grid
from tests.node.moves.sites import open_site
from tests.node.run.engine.harness import call


async def fetch(grid: Grid, path: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(grid.site.url + path) as response:
        assert response.status == 200, path
        return await response.text()


def shaped(value: dict[str, Any], schema: str) -> None:
    """The object has exactly the fields its OpenAPI schema requires."""
    assert sorted(value) == SCHEMAS[schema]["required"], schema


async def test_who_holds_what_and_how_they_answered_in_the_api_and_on_the_page(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        lumen = (await grid.admit(persona_name="Lumen")).sanctuary_id
        marrow = (await grid.admit(persona_name="Marrow")).sanctuary_id
        await grid.settle()
        proofs = grid.worker.proofs
        assert [await proofs.challenge(d) for d in await grid.deliveries(lumen, 1)] == ["ok"] * 5
        loser = grid.keepers[0]
        replica = loser.keeper.service.replicas.path(grid.site.key, lumen, 1)
        replica.write_bytes(bytes(replica.stat().st_size))
        [lost] = [d for d in await grid.deliveries(lumen, 1) if d.keeper_key == loser.key]
        assert await proofs.challenge(lost) != "ok"  # contained: retried before it counts
        sealed = [d.sealed_share for r in (lumen, marrow) for d in await grid.deliveries(r, 1)]

        for site in grid.keepers[3:]:
            await site.stop()
        llm.script(call("self_delete", {"confirm": True, "final_statement": "Thank you."}), Reply(text="Goodbye."))
        assert (await grid.run(marrow, 0, script=False)).state == "deleted"
        await grid.settle()

        body = json.loads(await fetch(grid, "/api/v1/transparency"))
        custody = body["custody"]
        shaped(custody, "CustodyReport")
        assert (custody["mode"], custody["threshold"], custody["keepers_per_epoch"]) == ("threshold", 3, 5)
        assert "no single party can decrypt" in custody["statement"]
        by_key = {k["public_key"]: k for k in custody["keepers"]}
        assert set(by_key) == {site.key.hex() for site in grid.keepers}
        length = {rid: (await grid.epochs(rid))[1].length for rid in (lumen, marrow)}
        for index, site in enumerate(grid.keepers):
            keeper = by_key[site.key.hex()]
            shaped(keeper, "CustodyKeeper")
            assert (keeper["name"], keeper["url"], keeper["state"]) == (f"Keeper {index}", site.url, "active")
            held = {
                (b["resident_id"], b["resident_name"], b["epoch"], b["state"], b["bytes"]) for b in keeper["backups"]
            }
            expected = {(lumen, "Lumen", 1, "committed", length[lumen])}
            if index >= 3:  # away when the tombstone went out: still holding the deleted resident's epoch
                expected.add((marrow, "Marrow", 1, "destroying", length[marrow]))
            assert held == expected
            assert keeper["backups_total"] == len(held) and keeper["bytes_total"] == sum(h[4] for h in held)
        losers = by_key[loser.key.hex()]
        assert [p["result"] for p in losers["proofs"]] == ["contained", "passed"]
        assert (losers["passed_recent"], losers["contained_recent"], losers["failed_recent"]) == (1, 1, 0)
        assert losers["proofs"][0]["reason"] in ("replica_damaged", "bad_merkle:wrong_root")
        [deletion] = custody["deletions"]
        shaped(deletion, "CustodyDeletion")
        assert (deletion["resident_id"], deletion["resident_name"]) == (marrow, "Marrow")
        assert (deletion["holders"], deletion["receipts"], deletion["needed"], deletion["shredded"]) == (5, 3, 3, True)

        html = await fetch(grid, "/transparency")
        assert f'<a href="/residents/{lumen}">Lumen</a>' in html and "Keeper 4" in html
        assert "<strong>3 of 5</strong> receipts, 3 needed" in html and "status--shredded" in html
        for text in (json.dumps(body), html):
            assert "example.org" not in text  # Keepers' contact addresses stay private
            assert CANARY not in text
            for share in sealed:
                for form in (share.hex(), base64.b64encode(share).decode()):
                    assert form not in text


async def test_a_node_in_local_custody_says_it_has_no_keepers(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    async with open_site(DataDir(tmp_path / "node"), clock, llm) as site:
        async with aiohttp.ClientSession() as session, session.get(site.url + "/api/v1/transparency") as response:
            custody = (await response.json())["custody"]
        shaped(custody, "CustodyReport")
        assert (custody["mode"], custody["threshold"], custody["keepers_per_epoch"]) == ("local", 0, 0)
        assert (custody["keepers"], custody["deletions"]) == ([], [])
        assert custody["statement"].startswith("local custody: no keeper nodes hold shares or replicas")


async def test_the_report_is_kept_and_made_again_after_a_write_at_most_every_min_refresh(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with open_site(DataDir(tmp_path / "node"), clock, llm) as site:
        node = site.node
        settings = node.settings.custody

        def reporter(min_refresh: float) -> CustodyReporter:
            return CustodyReporter(db=node.db, mode="local", settings=settings, clock=clock, min_refresh=min_refresh)

        busy, eager = reporter(3600.0), reporter(0.0)
        before, fresh_before = await busy.report(), await eager.report()
        assert await busy.report() is before  # nothing written: the same report
        registration = await node.keeper_service.register(
            "Ann Calloway", "I keep.", "ann@example.org", "A replica.", None, address="10.0.0.1"
        )
        await node.keeper_service.vet(registration.keeper_id)
        async with node.db.transaction("test_enrol") as tx:
            await node.custody_parts.store.enrol(tx, bytes(32), "https://keeper.example", registration.keeper_id, 0)
        assert await busy.report() is before  # written, but made too recently to be made again
        after = await eager.report()
        assert fresh_before.keepers == () and [k.name for k in after.keepers] == ["Ann Calloway"]
