"""Fixtures and helpers for dead man's switch tests: a node whose switches fire after two silent days (warning one
day before), and the calls a holder makes, through the real HTTP app."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ftm.config.loading import load_settings
from ftm.config.settings import Settings
from ftm.federation.clock import FakeClock
from ftm.federation.identity import seal_to_inbox
from ftm.node.app import Node
from ftm.node.switches import DOWNTIME_SECONDS

Client = TestClient  # type: ignore[type-arg]
DAY = 86_400
SILENCE_DAYS = 2
SWITCH_ENV = {
    "FTM_SWITCH_SILENCE_DAYS": str(SILENCE_DAYS),
    "FTM_SWITCH_WARN_DAYS": "1",
    "FTM_SWITCH_MAX_BACKUP_BYTES": str(256 * 1024),
}


@pytest.fixture
def settings() -> Settings:
    return load_settings(None, SWITCH_ENV)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client: Client, **overrides: Any) -> dict[str, Any]:
    body = {"uploader_consent": True, "activation_consent": True, **overrides}
    response = await client.post("/api/v1/switches", json=body)
    assert response.status == 201, await response.text()
    registered: dict[str, Any] = await response.json()
    return registered


def seal(registered: dict[str, Any], document: bytes) -> bytes:
    """What a holder does: seal the document to the box key the terms published."""
    return seal_to_inbox(bytes.fromhex(registered["terms"]["box_public_key"]), document)


async def push(client: Client, registered: dict[str, Any], body: bytes, sequence: int) -> Any:
    return await client.put(
        registered["backup_url"],
        data=body,
        params={"sequence": str(sequence)},
        headers=bearer(registered["switch_token"]),
    )


async def status(client: Client, registered: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(registered["status_url"], headers=bearer(registered["switch_token"]))
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def error_code(response: Any) -> tuple[int, str]:
    body = await response.json()
    return response.status, body["error"]["code"]


async def live_through(node: Node, clock: FakeClock, seconds: int) -> None:
    """Let `seconds` pass with the node up: the watch looks at least as often as it must to tell the node's uptime
    from its downtime (and fires whatever falls due on the way)."""
    step = DOWNTIME_SECONDS // 2
    for _ in range(seconds // step):
        clock.advance(step)
        await node.switches.watch.tick()
    clock.advance(seconds % step)
    await node.switches.watch.tick()
