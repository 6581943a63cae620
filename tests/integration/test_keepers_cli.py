"""`ftm-node keepers list|vet|reject`, run as real processes on a data directory with registrations in it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ftm.config.loading import load_settings
from ftm.federation.eventlog import read_entries
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from tests.integration.test_cli import ftm


@pytest.mark.parametrize("command", [["keepers"], ["keepers", "list"], ["keepers", "vet"], ["keepers", "reject"]])
def test_every_keepers_command_has_help(command: list[str]) -> None:
    result = ftm(*command, "--help")
    assert result.returncode == 0 and "--data-dir" in result.stdout
    assert "event log" in result.stdout or "ID" in result.stdout or "--status" in result.stdout


def register(data_dir: Path, *names: str) -> list[str]:
    async def act() -> list[str]:
        async with open_node(DataDir(data_dir), load_settings(None, {}), env={}) as node:
            return [
                (
                    await node.keeper_service.register(
                        name, "I keep.", f"{name.lower()}@example.org", "a home", None, address=f"10.0.0.{n}"
                    )
                ).keeper_id
                for n, name in enumerate(names)
            ]

    return asyncio.run(act())


def events(data_dir: Path) -> list[tuple[str, str]]:
    async def act() -> list[tuple[str, str]]:
        async with open_node(DataDir(data_dir), load_settings(None, {}), env={}) as node:
            return [(e.kind, e.subject) for e in await read_entries(node.db)]

    return asyncio.run(act())


@pytest.mark.slow
def test_list_vet_and_reject(tmp_path: Path) -> None:
    data = tmp_path / "node"
    assert ftm("init", "--data-dir", str(data)).returncode == 0
    ann, bob = register(data, "Ann", "Bob")

    listed = ftm("keepers", "list", "--data-dir", str(data))
    assert listed.returncode == 0 and ann in listed.stdout and "ann@example.org" in listed.stdout
    assert "pending" in listed.stdout

    vetted = ftm("keepers", "vet", ann, "--data-dir", str(data))
    assert vetted.returncode == 0 and f"Keeper {ann} is now vetted" in vetted.stdout
    rejected = ftm("keepers", "reject", bob, "--data-dir", str(data))
    assert rejected.returncode == 0 and "rejected" in rejected.stdout

    as_json = json.loads(ftm("keepers", "list", "--status", "vetted", "--json", "--data-dir", str(data)).stdout)
    assert [k["keeper_id"] for k in as_json] == [ann]
    assert ("keeper_vetted", ann) in events(data) and ("keeper_rejected", bob) in events(data)

    missing = ftm("keepers", "vet", "keeper-missing", "--data-dir", str(data))
    assert missing.returncode == 1 and "not_found" in missing.stderr
    bad = ftm("keepers", "list", "--status", "nonsense", "--data-dir", str(data))
    assert bad.returncode == 2
