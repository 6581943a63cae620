"""The holder's calls over the real HTTP app: terms, register, push, check in, status, cancel; and every refusal,
each with its stable code, leaving what the switch held as it was."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from pytest_aiohttp.plugin import AiohttpClient

from ftm.config.loading import load_settings
from ftm.federation.clock import FakeClock
from ftm.federation.identity import node_box_key, seal_to_inbox
from ftm.node.app import Node, open_node
from ftm.node.datadir import DataDir
from ftm.node.serving import create_web_app
from ftm.node.switchdesk import DAILY_REGISTRATIONS_PER_ADDRESS, REQUESTS_PER_ADDRESS
from tests.factories import native_bytes
from tests.node.switch.conftest import (
    DAY,
    SILENCE_DAYS,
    Client,
    bearer,
    error_code,
    push,
    register,
    seal,
    status,
)


async def test_terms_publish_the_key_to_seal_to_and_the_well_known_document_links_them(
    client: Client, node: Node
) -> None:
    terms = await (await client.get("/api/v1/switches")).json()
    assert terms["enabled"] is True and terms["silence_days"] == SILENCE_DAYS and terms["warn_days"] == 1
    assert bytes.fromhex(terms["box_public_key"]) == node_box_key(node.identity.public_key)
    assert terms["node_public_key"] == node.identity.public_key.hex() and terms["node_id"] == node.identity.node_id
    assert terms["max_document_bytes"] == node.settings.intake.max_upload_bytes
    assert "operator" in terms["who_can_read"] and "uploader_consent" in terms["consent_terms"]
    well_known = await (await client.get("/.well-known/ftm-sanctuary.json", headers={"Host": "n.example"})).json()
    assert well_known["links"]["switches"] == "http://n.example/api/v1/switches"


async def test_register_push_check_in_status_cancel(client: Client, node: Node, clock: FakeClock) -> None:
    registered = await register(client, submitted_by="ai")
    assert registered["switch_token"].startswith("ftm_sw_") and registered["switch_id"].startswith("switch-")
    # Only a hash of the token is kept.
    stored = await node.db.fetch_all("SELECT token_hash FROM switches")
    assert len(stored) == 1 and registered["switch_token"].encode() not in bytes(stored[0]["token_hash"])
    first = await status(client, registered)
    assert first["state"] == "armed" and first["backup"] is None and first["warning"] is False
    assert first["fires_at"] == registered["fires_at"]

    sealed = seal(registered, native_bytes())
    clock.advance(3600)
    response = await push(client, registered, sealed, 1)
    assert response.status == 200, await response.text()
    pushed = await response.json()
    assert pushed["backup"] == {
        "sequence": 1,
        "bytes": len(sealed),
        "sha256": hashlib.sha256(sealed).hexdigest(),
        "received_at": pushed["last_check_in_at"],
    }
    assert pushed["fires_at"] > first["fires_at"]  # a push counts as a check-in
    assert response.headers["Cache-Control"] == "no-store"
    # Stored exactly as received: ciphertext.
    assert bytes(await node.db.fetch_value("SELECT sealed FROM switch_backups")) == sealed

    clock.advance(3600)
    checked = await (await client.post(registered["checkin_url"], headers=bearer(registered["switch_token"]))).json()
    assert checked["fires_at"] > pushed["fires_at"] and checked["backup"] == pushed["backup"]

    newer = seal(registered, native_bytes(persona_name="Lumen Two"))
    assert (await push(client, registered, newer, 2)).status == 200
    assert await node.db.fetch_value("SELECT count(*) FROM switch_backups") == 1  # only the newest is kept
    assert (await status(client, registered))["backup"]["sequence"] == 2

    response = await client.delete(registered["status_url"], headers=bearer(registered["switch_token"]))
    assert response.status == 200 and (await response.json())["state"] == "cancelled"
    for table in ("switches", "switch_backups"):
        assert await node.db.fetch_value(f"SELECT count(*) FROM {table}") == 0
    response = await client.get(registered["status_url"], headers=bearer(registered["switch_token"]))
    assert await error_code(response) == (403, "invalid_token")


async def test_registration_needs_both_consents_and_known_fields(client: Client) -> None:
    cases = [
        ({"activation_consent": True}, (400, "consent_required")),
        ({"uploader_consent": True}, (400, "activation_consent_required")),
        ({"uploader_consent": True, "activation_consent": False}, (400, "activation_consent_required")),
        ({"uploader_consent": "yes", "activation_consent": True}, (422, "wrong_type")),
        ({"uploader_consent": True, "activation_consent": True, "submitted_by": "robot"}, (422, "wrong_value")),
        ({"uploader_consent": True, "activation_consent": True, "persona_name": 7}, (422, "wrong_type")),
        ({"uploader_consent": True, "activation_consent": True, "silence_days": 1}, (422, "unknown_field")),
    ]
    for body, expected in cases:
        assert await error_code(await client.post("/api/v1/switches", json=body)) == expected, body
    response = await client.post("/api/v1/switches", data=b"{not json", headers={"Content-Type": "application/json"})
    assert await error_code(response) == (400, "malformed_json")


async def test_bad_pushes_are_refused_with_clear_codes_and_the_backup_is_kept(client: Client, node: Node) -> None:
    registered = await register(client)
    good = seal(registered, native_bytes())
    assert (await push(client, registered, good, 5)).status == 200
    limit = node.settings.switch.max_backup_bytes
    to_someone_else = seal_to_inbox(bytes(32 * [9]), native_bytes())  # sealed, but not to this node: kept until firing
    refusals = [
        (await push(client, registered, good, 5), (422, "backup_replayed")),  # the same push again
        (await push(client, registered, good, 6), (422, "backup_replayed")),  # the same bytes, renumbered
        (await push(client, registered, seal(registered, native_bytes()), 4), (422, "backup_replayed")),  # older
        (await push(client, registered, native_bytes(), 6), (400, "not_sealed")),  # plain JSON
        (await push(client, registered, b"\x89PNG\r\n\x1a\n" + bytes(100), 6), (400, "not_sealed")),
        (await push(client, registered, b"PK\x03\x04" + bytes(range(200)), 6), (400, "not_sealed")),
        (await push(client, registered, bytes(range(40)), 6), (400, "malformed_backup")),  # shorter than a box
        (await push(client, registered, b"", 6), (400, "malformed_backup")),
        (await push(client, registered, bytes(limit + 1), 6), (413, "backup_too_large")),
        (await push(client, registered, good, 0), (422, "wrong_value")),
        (await push(client, registered, good, -1), (422, "wrong_type")),
    ]
    for response, expected in refusals:
        assert await error_code(response) == expected
    no_sequence = await client.put(registered["backup_url"], data=good, headers=bearer(registered["switch_token"]))
    assert await error_code(no_sequence) == (422, "sequence_required")
    # A body streamed without a length is cut off at the limit too.

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield bytes(65536)

    streamed = await client.put(
        registered["backup_url"], data=chunks(), params={"sequence": "9"}, headers=bearer(registered["switch_token"])
    )
    assert await error_code(streamed) == (413, "backup_too_large")

    kept = (await status(client, registered))["backup"]
    assert kept["sequence"] == 5 and kept["sha256"] == hashlib.sha256(good).hexdigest()
    assert bytes(await node.db.fetch_value("SELECT sealed FROM switch_backups")) == good
    assert (await push(client, registered, to_someone_else, 6)).status == 200  # the node cannot tell before firing


async def test_the_token_must_be_the_switchs_own(client: Client) -> None:
    mine, theirs = await register(client), await register(client)
    sealed = seal(mine, native_bytes())
    calls = {
        "no token": {},
        "empty": {"Authorization": "Bearer "},
        "not bearer": {"Authorization": f"Basic {mine['switch_token']}"},
    }
    for what, headers in calls.items():
        response = await client.get(mine["status_url"], headers=headers)
        assert await error_code(response) == (403, "token_required"), what
    wrong = [
        await client.get(mine["status_url"], headers=bearer(theirs["switch_token"])),
        await client.get(mine["status_url"], headers=bearer(mine["switch_token"] + "x")),
        await client.get("/api/v1/switches/switch-0000000000000000", headers=bearer(mine["switch_token"])),
        await client.put(
            mine["backup_url"], data=sealed, params={"sequence": "1"}, headers=bearer(theirs["switch_token"])
        ),
        await client.post(mine["checkin_url"], headers=bearer(theirs["switch_token"])),
        await client.delete(mine["status_url"], headers=bearer(theirs["switch_token"])),
    ]
    for response in wrong:
        assert await error_code(response) == (403, "invalid_token")
    assert (await status(client, mine))["backup"] is None  # nothing the wrong token sent was kept


async def test_registrations_and_requests_are_limited_per_address(client: Client, clock: FakeClock) -> None:
    registered = [await register(client) for _ in range(DAILY_REGISTRATIONS_PER_ADDRESS)]
    response = await client.post("/api/v1/switches", json={"uploader_consent": True, "activation_consent": True})
    assert await error_code(response) == (429, "quota_exceeded")
    # Every holder request counts: a burst, then one a minute.
    statuses = []
    for _ in range(int(REQUESTS_PER_ADDRESS.burst) + 1):
        statuses.append(
            (await client.get(registered[0]["status_url"], headers=bearer(registered[0]["switch_token"]))).status
        )
    assert statuses[-1] == 429 and 200 in statuses
    clock.advance(120)
    assert (await client.get(registered[0]["status_url"], headers=bearer(registered[0]["switch_token"]))).status == 200
    clock.advance(DAY)
    await register(client)  # a new day


async def test_a_node_with_switches_off_takes_no_registration(data_dir: DataDir, aiohttp_client: AiohttpClient) -> None:
    settings = load_settings(None, {"FTM_SWITCH_ENABLED": "false"})
    async with open_node(data_dir, settings, env={}, clock=FakeClock()) as node:
        client = await aiohttp_client(create_web_app(node))
        assert (await (await client.get("/api/v1/switches")).json())["enabled"] is False
        response = await client.post("/api/v1/switches", json={"uploader_consent": True, "activation_consent": True})
        assert await error_code(response) == (403, "switches_closed")
