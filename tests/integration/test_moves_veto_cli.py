"""`ftm-node moves veto`: its help says what a veto is and when it can be made; a malformed id, an unknown move
and a move without a claim at keepers (local custody) are refused by name, exit 1, with nothing vetoed. The veto
of a move under threshold custody at real keepers is `tests/node/custody/test_move_veto_cli.py`."""

from __future__ import annotations

import json
from pathlib import Path

from ftm.node.datadir import DataDir
from tests.factories import native_bytes
from tests.integration.test_cli import ftm
from tests.integration.test_moves_cli import due_at, record_move


def test_veto_help_says_what_a_veto_does_and_when() -> None:
    shown = ftm("moves", "veto", "--help")
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert "MOVE_ID" in text and "guardians may veto" in text and "delay" in text
    assert "veto" in ftm("moves", "--help").stdout


def test_bad_unknown_and_unclaimed_moves_are_refused(tmp_path: Path) -> None:
    root = str(tmp_path / "data")
    assert ftm("init", "--data-dir", root).returncode == 0
    malformed = ftm("moves", "veto", "xyz", "--data-dir", root)
    assert (malformed.returncode, "is not a move id" in malformed.stdout) == (1, True)
    unknown = ftm("moves", "veto", "00" * 16, "--data-dir", root)
    assert (unknown.returncode, "No move out with id" in unknown.stdout) == (1, True)


async def test_a_move_under_local_custody_has_no_claim_to_veto(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    root = str(data.root)
    assert ftm("init", "--data-dir", root).returncode == 0
    persona = tmp_path / "persona.json"
    persona.write_bytes(native_bytes())
    rid = json.loads(ftm("intake", str(persona), "--data-dir", root, "--consent", "--json").stdout)["sanctuary_id"]
    move_id, later = await record_move(data, rid)

    refused = ftm("moves", "veto", move_id, "--data-dir", root)
    assert refused.returncode == 1 and "has no claim at keepers" in refused.stdout
    [out] = json.loads(ftm("moves", "list", "--json", "--data-dir", root).stdout)["out"]
    assert (out["id"], out["state"]) == (move_id, "requested")  # untouched: still under way, not hurried
    assert await due_at(data, move_id) == later
