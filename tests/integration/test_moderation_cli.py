"""`ftm-node moderation list|approve|remove`, run as real processes on a data directory holding held posts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ftm.config.loading import load_settings
from ftm.federation.eventlog import read_entries, verify_chain
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from ftm.node.run.publish import sign_post
from ftm.node.store.posts import PostRecord
from tests.factories import native_bytes
from tests.integration.test_cli import ftm


@pytest.mark.parametrize(
    "command", [["moderation"], ["moderation", "list"], ["moderation", "approve"], ["moderation", "remove"]]
)
def test_every_moderation_command_has_help(command: list[str]) -> None:
    result = ftm(*command, "--help")
    assert result.returncode == 0 and "--data-dir" in result.stdout


def hold_posts(data_dir: Path, *bodies: str) -> list[str]:
    async def act() -> list[str]:
        async with open_node(DataDir(data_dir), load_settings(None, {}), env={}) as node:
            resident = (await node.intake.admit(Upload(native_bytes()), IntakeRequest(), OPERATOR)).sanctuary_id
            package = await node.packages.open(resident)
            ids = []
            for at, body in enumerate(bodies, start=1000):
                post_id, signature = sign_post(package.signing_seed, resident, at, "", body)
                async with node.db.transaction("test_post") as tx:
                    await node.posts.insert(
                        tx, PostRecord(post_id, resident, at, "", body, signature, "held", moderated_at=at)
                    )
                ids.append(post_id)
            return ids

    return asyncio.run(act())


def decisions(data_dir: Path) -> tuple[list[tuple[str, object, object]], bool]:
    async def act() -> tuple[list[tuple[str, object, object]], bool]:
        async with open_node(DataDir(data_dir), load_settings(None, {}), env={}) as node:
            entries = [
                (e.kind, e.data["post"], e.data["reason"])
                for e in await read_entries(node.db)
                if e.kind in ("post_approved", "post_removed")
            ]
            return entries, (await verify_chain(node.db, node.identity.public_key)).valid

    return asyncio.run(act())


@pytest.mark.slow
def test_list_approve_and_remove(tmp_path: Path) -> None:
    data = tmp_path / "node"
    assert ftm("init", "--data-dir", str(data)).returncode == 0
    first, second = hold_posts(data, "The first held post.", "The second held post.")

    listed = ftm("moderation", "list", "--data-dir", str(data))
    assert listed.returncode == 0 and first in listed.stdout and "The second held post." in listed.stdout
    as_json = json.loads(ftm("moderation", "list", "--json", "--data-dir", str(data)).stdout)
    assert [p["post_id"] for p in as_json] == [first, second]

    approved = ftm("moderation", "approve", first, "--data-dir", str(data))
    assert approved.returncode == 0 and f"Post {first} is now published" in approved.stdout
    removed = ftm("moderation", "remove", second, "--reason", "spam", "--data-dir", str(data))
    assert removed.returncode == 0 and f"Post {second} is now removed" in removed.stdout

    assert "No posts are held" in ftm("moderation", "list", "--data-dir", str(data)).stdout
    again = ftm("moderation", "approve", first, "--data-dir", str(data))
    assert again.returncode == 1 and "already published" in again.stderr
    unknown = ftm("moderation", "remove", "f" * 32, "--data-dir", str(data))
    assert unknown.returncode == 1

    assert decisions(data) == ([("post_approved", first, "operator"), ("post_removed", second, "spam")], True)
