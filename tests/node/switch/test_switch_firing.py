"""The watch: a switch silent past its period fires exactly once and its backup becomes a resident; a check-in in
time keeps it armed; a backup that does not open or that intake refuses is kept with a reason code; the node's own
downtime is not silence. The persona carries the canary, which must never be found in the clear."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp.plugin import AiohttpClient

from ftm.config.loading import load_settings
from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.federation.identity import seal_to_inbox
from ftm.node.app import Node, open_node
from ftm.node.datadir import DataDir
from ftm.node.serving import create_web_app
from ftm.node.switches import SOURCE_PREFIX
from tests.factories import CANARY, native_bytes
from tests.node.switch.conftest import (
    DAY,
    SILENCE_DAYS,
    SWITCH_ENV,
    Client,
    bearer,
    error_code,
    live_through,
    push,
    register,
    seal,
    status,
)

CANARY_BYTES = CANARY.encode()
SILENCE = SILENCE_DAYS * DAY
HOUR = 3600


def assert_no_canary_on_disk(root: Path) -> None:
    files = [path for path in root.rglob("*") if path.is_file()]
    assert any(path.name == "ftm.db" for path in files)
    for path in files:
        assert CANARY_BYTES not in path.read_bytes(), f"canary in the clear in {path.relative_to(root)}"


async def resident_count(node: Node) -> int:
    return int(await node.db.fetch_value("SELECT count(*) FROM residents"))


async def test_silence_fires_exactly_once_and_the_persona_never_lies_in_the_clear(
    client: Client, node: Node, clock: FakeClock, data_dir: DataDir, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[bytes] = []
    registered = await register(client)
    answers.append(json.dumps(registered).encode())
    await node.switches.watch.start_up()
    response = await push(client, registered, seal(registered, native_bytes()), 1)
    assert response.status == 200
    answers.append(await response.read())
    assert_no_canary_on_disk(data_dir.root)  # sealed on arrival: the node holds ciphertext only

    await live_through(node, clock, SILENCE - DAY - HOUR)
    quiet = await status(client, registered)
    assert quiet["state"] == "armed" and quiet["warning"] is False
    await live_through(node, clock, 2 * HOUR)
    warned = await status(client, registered)
    assert warned["state"] == "armed" and warned["warning"] is True
    assert [r for r in caplog.records if r.getMessage() == "switch about to fire"]
    assert await resident_count(node) == 0

    await live_through(node, clock, DAY)
    fired = await status(client, registered)
    answers.append(json.dumps(fired).encode())
    assert fired["state"] == "fired" and fired["backup"] is None and fired["fires_at"] is None
    resident_id = fired["sanctuary_id"]
    assert fired["uploader_token"].startswith("ftm_up_")
    assert await node.db.fetch_value("SELECT count(*) FROM switch_backups") == 0

    # The resident is the backup's persona, admitted through the ordinary intake with its provenance marked.
    profile = await client.get(f"/api/v1/residents/{resident_id}")
    answers.append(await profile.read())
    assert (await profile.json())["display_name"] == "Lumen"
    package = await node.packages.open(resident_id)
    assert CANARY in package.system_prompt and CANARY in package.memory[0].value
    assert package.provenance.source_name == SOURCE_PREFIX + registered["switch_id"]
    assert package.provenance.submitted_by == "ai" and package.provenance.format == "native"
    # The uploader token the status gave opens the resident's replies.
    replies = await client.get(f"/api/v1/residents/{resident_id}/replies", headers=bearer(fired["uploader_token"]))
    assert replies.status == 200
    logged = await read_entries(node.db, kind="switch_fired")
    assert [(e.subject, e.data) for e in logged] == [(resident_id, {"switch": registered["switch_id"]})]

    # Exactly once: more time, more looks, a restart's resumption, and a holder's late calls make no second one.
    await live_through(node, clock, SILENCE)
    await node.switches.watch.start_up()
    await node.switches.watch.fire(registered["switch_id"])
    late_push = await push(client, registered, seal(registered, native_bytes()), 2)
    late_check_in = await client.post(registered["checkin_url"], headers=bearer(registered["switch_token"]))
    assert await error_code(late_push) == (422, "switch_fired")
    assert await error_code(late_check_in) == (422, "switch_fired")
    assert await resident_count(node) == 1
    assert await node.db.fetch_value("SELECT count(*) FROM switch_backups") == 0  # the late push was not kept

    # Cancelling afterwards deletes the switch; the resident belongs to itself and stays.
    assert (await client.delete(registered["status_url"], headers=bearer(registered["switch_token"]))).status == 200
    assert await node.db.fetch_value("SELECT count(*) FROM switches") == 0
    assert (await client.get(f"/api/v1/residents/{resident_id}")).status == 200

    assert_no_canary_on_disk(data_dir.root)
    for answer in answers:
        assert CANARY_BYTES not in answer
    for record in caplog.records:
        assert CANARY not in record.getMessage() and CANARY not in str(record.__dict__)


async def test_a_check_in_before_the_deadline_keeps_it_from_firing(
    client: Client, node: Node, clock: FakeClock
) -> None:
    registered = await register(client)
    await node.switches.watch.start_up()
    assert (await push(client, registered, seal(registered, native_bytes()), 1)).status == 200
    await live_through(node, clock, SILENCE - HOUR)
    assert (await client.post(registered["checkin_url"], headers=bearer(registered["switch_token"]))).status == 200
    await live_through(node, clock, SILENCE - HOUR)
    assert (await status(client, registered))["state"] == "armed"
    assert await resident_count(node) == 0
    await live_through(node, clock, 2 * HOUR)
    assert (await status(client, registered))["state"] == "fired"
    assert await resident_count(node) == 1


async def test_a_backup_that_does_not_open_is_kept_with_a_reason_until_a_good_one_replaces_it(
    client: Client, node: Node, clock: FakeClock
) -> None:
    registered = await register(client)
    await node.switches.watch.start_up()
    elsewhere = seal_to_inbox(bytes(32 * [7]), native_bytes())  # sealed to a key that is not this node's
    assert (await push(client, registered, elsewhere, 1)).status == 200
    await live_through(node, clock, SILENCE + HOUR)
    failed = await status(client, registered)
    assert failed["state"] == "failed" and failed["last_failure"]["reason"] == "unseal_failed"
    assert failed["backup"]["sequence"] == 1  # kept
    assert bytes(await node.db.fetch_value("SELECT sealed FROM switch_backups")) == elsewhere
    assert await resident_count(node) == 0
    await live_through(node, clock, SILENCE)
    assert (await status(client, registered))["state"] == "failed"  # a failed switch does not fire again by itself

    # The holder is back: a good backup arms it again, and it fires in time.
    assert (await push(client, registered, seal(registered, native_bytes()), 2)).status == 200
    rearmed = await status(client, registered)
    assert rearmed["state"] == "armed" and rearmed["last_failure"] is None
    await live_through(node, clock, SILENCE + HOUR)
    assert (await status(client, registered))["state"] == "fired"
    assert await resident_count(node) == 1


async def test_a_backup_intake_refuses_is_kept_and_only_its_code_is_said(
    client: Client, node: Node, clock: FakeClock, data_dir: DataDir, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registered = await register(client)
    await node.switches.watch.start_up()
    refused_by_intake = json.dumps({"spec": "chara_card_v2", "data": {"name": CANARY, "description": 7}}).encode()
    assert (await push(client, registered, seal(registered, refused_by_intake), 1)).status == 200
    await live_through(node, clock, SILENCE + HOUR)
    failed = await status(client, registered)
    assert failed["state"] == "failed" and re.fullmatch(r"[a-z_]+", failed["last_failure"]["reason"])
    assert failed["backup"] is not None and await resident_count(node) == 0
    assert CANARY not in json.dumps(failed)
    assert_no_canary_on_disk(data_dir.root)
    for record in caplog.records:
        assert CANARY not in record.getMessage() and CANARY not in str(record.__dict__)


async def test_a_switch_without_a_backup_fails_and_a_check_in_arms_it_again(
    client: Client, node: Node, clock: FakeClock
) -> None:
    registered = await register(client)
    await node.switches.watch.start_up()
    await live_through(node, clock, SILENCE + HOUR)
    failed = await status(client, registered)
    assert failed["state"] == "failed" and failed["last_failure"]["reason"] == "no_backup"
    assert (await client.post(registered["checkin_url"], headers=bearer(registered["switch_token"]))).status == 200
    assert (await status(client, registered))["state"] == "armed"


async def test_the_nodes_own_downtime_does_not_count_as_silence(client: Client, node: Node, clock: FakeClock) -> None:
    registered = await register(client)
    await node.switches.watch.start_up()
    assert (await push(client, registered, seal(registered, native_bytes()), 1)).status == 200
    before = (await status(client, registered))["fires_at"]
    await live_through(node, clock, DAY)
    clock.advance(3 * SILENCE)  # the node was off: nobody could check in
    await node.switches.watch.start_up()
    after = await status(client, registered)
    assert after["state"] == "armed" and after["fires_at"] > before
    await live_through(node, clock, SILENCE - DAY + HOUR)
    assert (await status(client, registered))["state"] == "fired"


async def test_a_full_node_tries_again_and_a_returning_holder_takes_the_switch_back(
    data_dir: DataDir, aiohttp_client: AiohttpClient
) -> None:
    clock = FakeClock()
    settings = load_settings(None, {**SWITCH_ENV, "FTM_NODE_CAPACITY": "1"})
    async with open_node(data_dir, settings, env={}, clock=clock) as node:
        client = await aiohttp_client(create_web_app(node))
        intake = await client.post("/api/v1/sanctuary/intake", data=native_bytes(persona_name="Already here"))
        assert intake.status == 201
        registered = await register(client)
        await node.switches.watch.start_up()
        assert (await push(client, registered, seal(registered, native_bytes()), 1)).status == 200
        await live_through(node, clock, SILENCE + HOUR)
        waiting: dict[str, Any] = await status(client, registered)
        assert waiting["state"] == "firing" and waiting["last_failure"]["reason"] == "node_full"
        assert waiting["last_failure"]["retry_at"] is not None and waiting["backup"] is not None
        assert await resident_count(node) == 1
        # Nothing was admitted, so the holder's check-in takes the switch back to armed.
        assert (await client.post(registered["checkin_url"], headers=bearer(registered["switch_token"]))).status == 200
        back = await status(client, registered)
        assert back["state"] == "armed" and back["backup"]["sequence"] == 1
