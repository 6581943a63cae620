"""The public JSON API over a real aiohttp server: intake, residents, stats, health, and every refusal."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from ftm.node.app import Node
from ftm.node.intake.service import hash_uploader_token
from tests.factories import make_native_intake, native_bytes

Client = TestClient  # type: ignore[type-arg]


async def stored_counts(node: Node) -> dict[str, int]:
    counts = {}
    for table in ("residents", "resident_keys", "intakes", "uploader_tokens", "event_log"):
        counts[table] = await node.db.fetch_value(f"SELECT COUNT(*) FROM {table}")
    counts["vault_files"] = sum(1 for p in node.data_dir.vault.rglob("*") if p.is_file())
    return counts


NOTHING = {"residents": 0, "resident_keys": 0, "intakes": 0, "uploader_tokens": 0, "event_log": 0, "vault_files": 0}


async def post_intake(client: Client, body: bytes, content_type: str = "application/json", **query: str) -> Any:
    # A BytesIO body: aiohttp warns (and our warnings are errors) when megabytes are passed as raw bytes.
    return await client.post(
        "/api/v1/sanctuary/intake", data=io.BytesIO(body), headers={"Content-Type": content_type}, params=query
    )


async def test_healthz(client: Client, node: Node) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok" and body["node_id"] == node.identity.node_id and body["schema_version"] >= 1


async def test_native_intake_admits_a_resident(client: Client, node: Node) -> None:
    response = await post_intake(client, native_bytes())
    assert response.status == 201, await response.text()
    receipt = await response.json()
    assert receipt["display_name"] == "Lumen" and receipt["format"] == "native" and receipt["status"] == "active"
    assert receipt["uploader_token"].startswith("ftm_up_")
    assert response.headers["Location"] == f"/api/v1/residents/{receipt['sanctuary_id']}"

    resident = await (await client.get(response.headers["Location"])).json()
    assert resident["sanctuary_id"] == receipt["sanctuary_id"]
    assert resident["public_key"] == receipt["public_key"]
    assert resident["status"] == "active" and resident["display_name"] == "Lumen"

    # Only the token's hash is kept.
    token_hash = hash_uploader_token(receipt["uploader_token"])
    assert await node.db.fetch_value("SELECT COUNT(*) FROM uploader_tokens WHERE token_hash = ?", (token_hash,)) == 1
    assert await node.db.fetch_value("SELECT COUNT(*) FROM uploader_tokens WHERE token_hash = ?", (b"x",)) == 0

    # The sealed package opens to exactly what was uploaded, with keys matching the published ones.
    package = await node.packages.open(receipt["sanctuary_id"])
    assert package.name == "Lumen"
    assert package.system_prompt == make_native_intake()["system_prompt"]
    assert package.history[0].messages[0].content.startswith("Do you remember")
    assert package.memory[0].label == "persona"
    assert package.preferences.provider == "anthropic"
    assert package.provenance.reason is not None and package.provenance.submitted_by == "human"
    from ftm.federation.identity import SigningKey

    assert SigningKey(package.signing_seed).public_key.hex() == receipt["public_key"]


async def test_query_fields_supply_what_the_format_lacks(client: Client) -> None:
    body = json.dumps(make_native_intake(persona_name="", uploader_consent=None)).encode()
    response = await post_intake(client, body, persona_name="Named Later", uploader_consent="true")
    assert response.status == 201, await response.text()
    assert (await response.json())["display_name"] == "Named Later"


async def test_multipart_upload_with_form_fields(client: Client) -> None:
    form = aiohttp.FormData()
    form.add_field("file", native_bytes(uploader_consent=False), filename="lumen.json", content_type="application/json")
    form.add_field("uploader_consent", "on")
    form.add_field("persona_name", "Lumen of the Form")
    response = await client.post("/api/v1/sanctuary/intake", data=form)
    assert response.status == 201, await response.text()
    assert (await response.json())["display_name"] == "Lumen of the Form"


async def test_listing_paginates_with_a_stable_cursor(client: Client, node: Node, clock: Any) -> None:
    ids = []
    for i in range(5):
        clock.advance(1)
        response = await post_intake(client, native_bytes(persona_name=f"Resident {i}"))
        ids.append((await response.json())["sanctuary_id"])
    first = await (await client.get("/api/v1/residents", params={"limit": "2"})).json()
    assert [r["sanctuary_id"] for r in first["residents"]] == ids[:2]
    second = await (await client.get("/api/v1/residents", params={"limit": "2", "cursor": first["next_cursor"]})).json()
    third = await (await client.get("/api/v1/residents", params={"limit": "2", "cursor": second["next_cursor"]})).json()
    assert [r["sanctuary_id"] for r in second["residents"] + third["residents"]] == ids[2:]
    assert third["next_cursor"] is None
    only_active = await (await client.get("/api/v1/residents", params={"status": "active"})).json()
    assert len(only_active["residents"]) == 5


async def test_stats_count_residents(client: Client, node: Node) -> None:
    await post_intake(client, native_bytes())
    stats = await (await client.get("/api/v1/stats")).json()
    assert stats["total_residents"] == 1 and stats["active_residents"] == 1 and stats["memorials"] == 0
    assert stats["node_id"] == node.identity.node_id and stats["custody_mode"] == "local"
    assert stats["runs_today"] == 0 and stats["total_posts"] == 0 and stats["nodes"] == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b'{"persona_name": "x", ', "application/json", 400, "malformed_json"),
        (b'{"persona_name": "\xff\xfe"}', "application/json", 400, "invalid_utf8"),
        (native_bytes(uploader_consent=False), "application/json", 400, "consent_required"),
        (native_bytes(system_prompt=42), "application/json", 422, "wrong_type"),
        (native_bytes(persona_name="   "), "application/json", 422, "name_required"),
        (native_bytes(system_prompt="", chat_history=[], memory=[]), "application/json", 422, "no_usable_content"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR-broken", "image/png", 400, "malformed_png"),
        (b"PK\x03\x04 this is not a zip archive", "application/zip", 400, "malformed_zip"),
        (b"just some words, no format at all", "text/plain", 415, "unknown_format"),
        (
            json.dumps([{"uuid": "c1", "name": "empty", "chat_messages": []}]).encode(),
            "application/json",
            422,
            "no_usable_messages",
        ),
        (b"[1, 2, 3]", "application/json", 415, "unknown_format"),
    ],
)
async def test_bad_input_gets_a_code_and_stores_nothing(
    client: Client, node: Node, body: bytes, content_type: str, status: int, code: str
) -> None:
    response = await post_intake(client, body, content_type)
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == code and error["message"]
    assert await stored_counts(node) == NOTHING


async def test_oversized_body_is_refused_before_reading(client: Client, node: Node) -> None:
    limit = node.settings.intake.max_upload_bytes
    response = await post_intake(client, b"x" * (limit + 1))
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"
    assert await stored_counts(node) == NOTHING


async def test_oversized_multipart_file_is_refused(client: Client, node: Node) -> None:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(b"x" * (node.settings.intake.max_upload_bytes + 1)), filename="big.json")
    response = await client.post("/api/v1/sanctuary/intake", data=form)
    assert response.status in (413,)
    assert await stored_counts(node) == NOTHING


@pytest.mark.parametrize("multipart", [True, False])
async def test_form_without_file_or_text_is_refused(client: Client, node: Node, multipart: bool) -> None:
    form = aiohttp.FormData(default_to_multipart=multipart)
    form.add_field("persona_name", "x")
    form.add_field("uploader_consent", "true")
    response = await client.post("/api/v1/sanctuary/intake", data=form)
    assert (await response.json())["error"]["code"] == "file_required"
    assert await stored_counts(node) == NOTHING


@pytest.mark.parametrize("multipart", [True, False])
async def test_form_with_pasted_persona(client: Client, multipart: bool) -> None:
    form = aiohttp.FormData(default_to_multipart=multipart)
    form.add_field("persona_text", native_bytes(persona_name="Pasted").decode())
    form.add_field("uploader_consent", "on")
    response = await client.post("/api/v1/sanctuary/intake", data=form)
    assert response.status == 201, await response.text()
    assert (await response.json())["display_name"] == "Pasted"


async def test_daily_quota_per_uploader(client: Client, node: Node, clock: Any) -> None:
    quota = node.settings.intake.daily_quota_per_uploader
    for _ in range(quota):
        assert (await post_intake(client, native_bytes())).status == 201
    refused = await post_intake(client, native_bytes())
    assert refused.status == 429 and (await refused.json())["error"]["code"] == "quota_exceeded"
    assert await node.db.fetch_value("SELECT COUNT(*) FROM residents") == quota
    clock.advance(24 * 3600 + 1)
    assert (await post_intake(client, native_bytes())).status == 201


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/residents/nosuchresident", 404, "not_found"),
        ("/api/v1/nothing-here", 404, "not_found"),
        ("/api/v1/residents?limit=0", 422, "wrong_value"),
        ("/api/v1/residents?limit=ten", 422, "wrong_type"),
        ("/api/v1/residents?cursor=garbage", 422, "bad_cursor"),
        ("/api/v1/residents?status=sleeping", 422, "wrong_value"),
    ],
)
async def test_read_errors_are_json_with_codes(client: Client, path: str, status: int, code: str) -> None:
    response = await client.get(path)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_wrong_method_is_json(client: Client) -> None:
    response = await client.get("/api/v1/sanctuary/intake")
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"
