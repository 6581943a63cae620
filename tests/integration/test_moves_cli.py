"""`ftm-node moves`: the operator lists moves each way (text and JSON) and waives a stalled move's backoff; ids
that are malformed or name no move under way are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

from ftm.config.loading import load_settings
from ftm.federation.clock import SystemClock
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from tests.factories import native_bytes
from tests.integration.test_cli import ftm

DESTINATION_KEY = bytes(range(32))
DESTINATION_URL = "https://elsewhere.example"


async def record_move(data_dir: DataDir, resident_id: str) -> tuple[str, int]:
    """A move as a run's commit records it, put off an hour as after failed tries; its id (hex), when it is due."""
    now = int(SystemClock().now())
    async with open_node(data_dir, load_settings(data_dir.config_file, {}), env={}) as node:
        async with node.db.transaction("test_request_move") as tx:
            assert await node.moves.request(tx, resident_id, DESTINATION_KEY, DESTINATION_URL, now)
        move = await node.moves.store.open_out(resident_id)
        assert move is not None
        await node.moves.store.retry_out(move.id, now + 3600, now)
        return move.id.hex(), now + 3600


async def due_at(data_dir: DataDir, move_id: str) -> int:
    async with open_node(data_dir, load_settings(data_dir.config_file, {}), env={}) as node:
        move = await node.moves.store.get_out(bytes.fromhex(move_id))
        assert move is not None
        return move.next_try_at


async def test_list_a_move_and_retry_it_now(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    root = str(data.root)
    assert ftm("init", "--data-dir", root).returncode == 0
    assert "No resident has moved" in ftm("moves", "list", "--data-dir", root).stdout
    persona = tmp_path / "persona.json"
    persona.write_bytes(native_bytes())
    intake = ftm("intake", str(persona), "--data-dir", root, "--consent", "--json")
    rid = json.loads(intake.stdout)["sanctuary_id"]
    move_id, later = await record_move(data, rid)

    listing = ftm("moves", "list", "--data-dir", root)
    assert listing.returncode == 0
    assert "Moving away" in listing.stdout and move_id in listing.stdout and DESTINATION_URL in listing.stdout
    shown = json.loads(ftm("moves", "list", "--json", "--data-dir", root).stdout)
    [out] = shown["out"]
    assert shown["in"] == []
    assert (out["id"], out["resident_id"], out["state"], out["tries"]) == (move_id, rid, "requested", 1)
    assert out["destination_url"] == DESTINATION_URL and out["next_try"] is not None

    retried = ftm("moves", "retry", move_id, "--data-dir", root)
    assert retried.returncode == 0 and "is due now" in retried.stdout
    assert await due_at(data, move_id) < later


def test_bad_and_unknown_move_ids_are_refused(tmp_path: Path) -> None:
    root = str(tmp_path / "data")
    assert ftm("init", "--data-dir", root).returncode == 0
    malformed = ftm("moves", "retry", "xyz", "--data-dir", root)
    assert malformed.returncode != 0 and "is not a move id" in malformed.stdout
    unknown = ftm("moves", "retry", "00" * 16, "--data-dir", root)
    assert unknown.returncode != 0 and "No move out with id" in unknown.stdout
