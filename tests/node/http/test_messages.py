"""Writing to a resident: sealed on arrival, readable only with its inbox secret, uploader access checked."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ftm.node.app import Node
from ftm.node.messages import DAILY_MESSAGES_PER_SENDER, MAX_MESSAGE_CHARS
from tests.factories import native_bytes

Client = TestClient  # type: ignore[type-arg]
SECRET_TEXT = "meet me by the lighthouse at dawn"


@pytest.fixture
async def receipt(client: Client) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/sanctuary/intake", data=native_bytes(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 201
    body: dict[str, Any] = await response.json()
    return body


async def send(client: Client, resident_id: str, body: Any, **headers: str) -> Any:
    return await client.post(f"/api/v1/residents/{resident_id}/message", json=body, headers=headers)


async def read_inbox(node: Node, resident_id: str) -> list[Any]:
    package = await node.packages.open(resident_id)
    return [m.message for m in await node.inbox.open_for_run(resident_id, package.inbox_secret, limit=100)]


async def test_a_visitor_message_is_sealed_and_opens_in_the_run(client: Client, node: Node, receipt: Any) -> None:
    response = await send(client, receipt["sanctuary_id"], {"message": SECRET_TEXT, "from_name": "Ann"})
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["sender_kind"] == "visitor" and body["status"] == "sealed"
    sealed = await node.db.fetch_value("SELECT sealed FROM messages WHERE id = ?", (body["message_id"],))
    assert SECRET_TEXT.encode() not in bytes(sealed)
    inbox = await read_inbox(node, receipt["sanctuary_id"])
    assert [(m.text, m.from_name, m.sender_kind) for m in inbox] == [(SECRET_TEXT, "Ann", "visitor")]


async def test_the_uploader_token_marks_the_uploader(client: Client, node: Node, receipt: Any) -> None:
    token = receipt["uploader_token"]
    in_body = await send(client, receipt["sanctuary_id"], {"message": "from the body", "uploader_token": token})
    in_header = await send(
        client, receipt["sanctuary_id"], {"message": "from a header"}, Authorization=f"Bearer {token}"
    )
    assert [(await r.json())["sender_kind"] for r in (in_body, in_header)] == ["uploader", "uploader"]
    assert [m.sender_kind for m in await read_inbox(node, receipt["sanctuary_id"])] == ["uploader", "uploader"]


async def test_wrong_foreign_or_revoked_tokens_are_refused(client: Client, node: Node, receipt: Any) -> None:
    wrong = await send(client, receipt["sanctuary_id"], {"message": "x", "uploader_token": "ftm_up_guess"})
    assert wrong.status == 403 and (await wrong.json())["error"]["code"] == "invalid_token"

    other = await client.post(
        "/api/v1/sanctuary/intake",
        data=native_bytes(persona_name="Other"),
        headers={"Content-Type": "application/json"},
    )
    foreign = await send(
        client, (await other.json())["sanctuary_id"], {"message": "x", "uploader_token": receipt["uploader_token"]}
    )
    assert foreign.status == 403 and (await foreign.json())["error"]["code"] == "invalid_token"

    async with node.db.transaction("revoke") as tx:
        await tx.execute("UPDATE uploader_tokens SET revoked_at = 1 WHERE resident_id = ?", (receipt["sanctuary_id"],))
    revoked = await send(client, receipt["sanctuary_id"], {"message": "x", "uploader_token": receipt["uploader_token"]})
    assert revoked.status == 403 and (await revoked.json())["error"]["code"] == "access_revoked"
    assert await node.db.fetch_value("SELECT COUNT(*) FROM messages") == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"message": "   "}, 422, "empty_message"),
        ({"message": "\u200b\u202e"}, 422, "empty_message"),
        ({"message": "x" * (MAX_MESSAGE_CHARS + 1)}, 413, "message_too_long"),
        ({"message": 5}, 422, "wrong_type"),
        ({"text": "wrong field"}, 422, "message_required"),
        (["not", "an", "object"], 422, "wrong_type"),
    ],
)
async def test_bad_messages_are_refused_and_nothing_is_stored(
    client: Client, node: Node, receipt: Any, body: Any, status: int, code: str
) -> None:
    response = await send(client, receipt["sanctuary_id"], body)
    assert response.status == status and (await response.json())["error"]["code"] == code
    assert await node.db.fetch_value("SELECT COUNT(*) FROM messages") == 0


async def test_malformed_oversized_and_unknown(client: Client, receipt: Any) -> None:
    path = f"/api/v1/residents/{receipt['sanctuary_id']}/message"
    malformed = await client.post(path, data=b"{not json", headers={"Content-Type": "application/json"})
    assert (await malformed.json())["error"]["code"] == "malformed_json"
    huge = await client.post(path, data=b"x" * 200_000, headers={"Content-Type": "application/json"})
    assert huge.status == 413
    unknown = await send(client, "nosuchresident", {"message": "hello"})
    assert unknown.status == 404


async def test_invisible_characters_are_stripped(client: Client, node: Node, receipt: Any) -> None:
    await send(client, receipt["sanctuary_id"], {"message": "hel\u200blo\u202e there"})
    assert [m.text for m in await read_inbox(node, receipt["sanctuary_id"])] == ["hello there"]


async def test_daily_quota_per_sender(client: Client, node: Node, receipt: Any, clock: Any) -> None:
    for i in range(DAILY_MESSAGES_PER_SENDER):
        assert (await send(client, receipt["sanctuary_id"], {"message": f"note {i}"})).status == 201
    refused = await send(client, receipt["sanctuary_id"], {"message": "one too many"})
    assert refused.status == 429 and (await refused.json())["error"]["code"] == "quota_exceeded"
    clock.advance(24 * 3600 + 1)
    assert (await send(client, receipt["sanctuary_id"], {"message": "a new day"})).status == 201
