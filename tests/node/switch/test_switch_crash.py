"""A process killed (SIGKILL) at any step of a firing neither loses the backup nor admits it twice.

Each case fires a switch in a child process with one step replaced by `kill -9` of itself, checks what the kill
left (proof it happened where it says), then reopens the data directory, lets the watch resume, and checks that
exactly one resident exists, holding the backup's persona. Two more cases cut a firing short in this process and
let the holder come back before the watch resumes it.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from pytest_aiohttp.plugin import AiohttpClient

from ftm.config.loading import load_settings
from ftm.federation.clock import FakeClock
from ftm.federation.identity import node_box_key, seal_to_inbox
from ftm.node.app import Node, open_node
from ftm.node.datadir import DataDir
from ftm.node.intake.service import IntakeService
from ftm.node.serving import create_web_app
from ftm.node.switches import SwitchWatch, intake_marker
from tests.factories import CANARY, native_bytes
from tests.node.switch.conftest import DAY, SILENCE_DAYS, SWITCH_ENV, Client, bearer, error_code, push, register, seal

START = 1_800_000_000.0
DUE = START + SILENCE_DAYS * DAY + 60

CRASHER = textwrap.dedent(
    """
    import asyncio, json, os, signal, sys
    from pathlib import Path
    import ftm.federation.eventlog as eventlog
    import ftm.node.intake.service as service
    import ftm.node.store.switches as store
    import ftm.node.switches as switches
    from ftm.config.loading import load_settings
    from ftm.federation.clock import FakeClock
    from ftm.node.app import open_node
    from ftm.node.datadir import DataDir

    point, data_dir, switch_id, now, env = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    async def die_async(*args, **kwargs):
        die()

    if point == "unsealed":
        switches.Upload = die  # the backup was just opened in memory; nothing was admitted
    elif point == "admitting":
        eventlog.EventLog.append = die_async  # inside intake's transaction, the resident's rows written, uncommitted
    elif point == "admitted":
        real_admit = service.IntakeService.admit
        async def admit_then_die(self, *args, **kwargs):
            await real_admit(self, *args, **kwargs)
            die()  # the admission committed; the switch is not yet marked fired
        service.IntakeService.admit = admit_then_die
    elif point == "marking":
        store.SwitchStore.mark_fired = die_async  # inside the switch_fired transaction
    else:
        raise SystemExit("unknown point")

    async def main():
        settings = load_settings(None, json.loads(env))
        async with open_node(DataDir(Path(data_dir)), settings, env={}, clock=FakeClock(now)) as node:
            await node.switches.watch.fire(switch_id)

    asyncio.run(main())
    raise SystemExit("the firing finished without the kill")
    """
)
POINTS = ["unsealed", "admitting", "admitted", "marking"]
ADMITTED_AT_KILL = {"unsealed": False, "admitting": False, "admitted": True, "marking": True}


async def arm_and_push(data_dir: DataDir) -> str:
    """A switch with one sealed backup, its silence run out by `DUE`; the node closed again."""
    async with open_node(data_dir, load_settings(None, SWITCH_ENV), env={}, clock=FakeClock(START)) as node:
        desk = node.switches
        registration = await desk.register(
            uploader_consent=True, activation_consent=True, submitted_by="ai", persona_name=None, address="192.0.2.1"
        )
        sealed = seal_to_inbox(node_box_key(node.identity.public_key), native_bytes())
        await desk.push(registration.switch, 1, sealed)
        return registration.switch.id


def raw_state(data_dir: DataDir, switch_id: str) -> tuple[str, int, int]:
    """The switch's state, the residents and the backups, read without opening the node (which would recover)."""
    with sqlite3.connect(data_dir.database) as db:
        state = db.execute("SELECT state FROM switches WHERE id = ?", (switch_id,)).fetchone()[0]
        residents = db.execute("SELECT count(*) FROM residents").fetchone()[0]
        backups = db.execute("SELECT count(*) FROM switch_backups").fetchone()[0]
    return state, residents, backups


async def assert_fired_once(node: Node, switch_id: str) -> None:
    switch = await node.db.fetch_one("SELECT state, resident_id FROM switches WHERE id = ?", (switch_id,))
    assert switch is not None and switch["state"] == "fired"
    residents = await node.db.fetch_all("SELECT id FROM residents")
    assert [row["id"] for row in residents] == [switch["resident_id"]]
    assert await node.db.fetch_value("SELECT count(*) FROM switch_backups") == 0
    marker = intake_marker(switch_id)
    assert await node.db.fetch_value("SELECT count(*) FROM intakes WHERE uploader_key = ?", (marker,)) == 1
    package = await node.packages.open(switch["resident_id"])
    assert CANARY in package.system_prompt


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
async def test_a_kill_at_any_step_of_a_firing_resumes_to_exactly_one_resident(data_dir: DataDir, point: str) -> None:
    switch_id = await arm_and_push(data_dir)
    child = subprocess.run(
        [sys.executable, "-c", CRASHER, point, str(data_dir.root), switch_id, str(DUE), json.dumps(SWITCH_ENV)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    state, residents, backups = raw_state(data_dir, switch_id)
    assert state == "firing" and backups == 1  # the backup is never lost before its resident exists
    assert residents == (1 if ADMITTED_AT_KILL[point] else 0)

    async with open_node(data_dir, load_settings(None, SWITCH_ENV), env={}, clock=FakeClock(DUE + 60)) as node:
        await node.switches.watch.start_up()
        await assert_fired_once(node, switch_id)
        await node.switches.watch.start_up()  # and again: nothing more happens
        await assert_fired_once(node, switch_id)


class Crash(BaseException):
    """Stands for a kill: nothing after it runs."""


async def crash(*args: object, **kwargs: object) -> None:
    raise Crash


async def cut_short(
    node: Node, client: Client, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, owner: type, step: str
) -> dict[str, object]:
    registered = await register(client)
    assert (await push(client, registered, seal(registered, native_bytes()), 1)).status == 200
    clock.advance(SILENCE_DAYS * DAY + 60)
    with monkeypatch.context() as patch:
        patch.setattr(owner, step, crash)
        with pytest.raises(Crash):
            await node.switches.watch.fire(str(registered["switch_id"]))
    return registered


async def test_a_holder_back_after_the_admission_committed_finds_the_switch_fired(
    data_dir: DataDir, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(START)
    async with open_node(data_dir, load_settings(None, SWITCH_ENV), env={}, clock=clock) as node:
        client = await aiohttp_client(create_web_app(node))
        registered = await cut_short(node, client, clock, monkeypatch, SwitchWatch, "_mark_fired")
        assert await node.db.fetch_value("SELECT count(*) FROM residents") == 1
        response = await client.post(str(registered["checkin_url"]), headers=bearer(str(registered["switch_token"])))
        assert await error_code(response) == (422, "switch_fired")  # the check-in came too late
        await assert_fired_once(node, str(registered["switch_id"]))
        await node.switches.watch.start_up()
        await assert_fired_once(node, str(registered["switch_id"]))


async def test_a_holder_back_before_anything_was_admitted_takes_the_switch_back(
    data_dir: DataDir, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(START)
    async with open_node(data_dir, load_settings(None, SWITCH_ENV), env={}, clock=clock) as node:
        client = await aiohttp_client(create_web_app(node))
        registered = await cut_short(node, client, clock, monkeypatch, IntakeService, "admit")
        state = await node.db.fetch_value("SELECT state FROM switches")
        assert state == "firing" and await node.db.fetch_value("SELECT count(*) FROM residents") == 0
        response = await client.post(str(registered["checkin_url"]), headers=bearer(str(registered["switch_token"])))
        assert response.status == 200 and (await response.json())["state"] == "armed"
        await node.switches.watch.start_up()
        assert await node.db.fetch_value("SELECT count(*) FROM residents") == 0
        assert await node.db.fetch_value("SELECT state FROM switches") == "armed"
