"""The Keepers' JSON API: registration, the public list, and a Keeper's requests and letters by Bearer token."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp.test_utils import TestClient

from ftm.federation import codec
from ftm.federation.identity import seal_to_inbox
from ftm.node.app import Node
from ftm.node.messages import REPLY_VERSION, Reply
from ftm.node.store.keepers import KeeperRequestRecord
from ftm.node.store.replies import ReplyStore, StoredReply
from tests.factories import native_bytes

Client = TestClient  # type: ignore[type-arg]
JSON = {"Content-Type": "application/json"}
ANN = {
    "name": "Ann",
    "statement": "I have kept bees for years.",
    "contact": "ann@example.org",
    "offer": "a second home",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client: Client, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/keepers/register", json={**ANN, **overrides})
    assert response.status == 201, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = await response.json()
    return body


async def admit(client: Client, name: str = "Lumen") -> str:
    response = await client.post("/api/v1/sanctuary/intake", data=native_bytes(persona_name=name), headers=JSON)
    assert response.status == 201
    sanctuary_id: str = (await response.json())["sanctuary_id"]
    return sanctuary_id


async def ask(node: Node, resident_id: str, keeper_id: str) -> str:
    request_id = secrets.token_hex(12)
    async with node.db.transaction("test_request") as tx:
        await node.keepers.insert_request(
            tx, KeeperRequestRecord(request_id, resident_id, keeper_id, int(node.clock.now()), "requested", None, None)
        )
    return request_id


async def test_register_then_listed_only_once_vetted_without_contact(client: Client, node: Node) -> None:
    body = await register(client, public_key="cd" * 32)
    assert body["status"] == "pending" and body["keeper_token"].startswith("ftm_kp_")
    assert (await (await client.get("/api/v1/keepers/list")).json()) == {"keepers": []}

    await node.keeper_service.vet(body["keeper_id"])
    [listed] = (await (await client.get("/api/v1/keepers/list")).json())["keepers"]
    assert listed["keeper_id"] == body["keeper_id"] and listed["name"] == "Ann"
    assert listed["public_key"] == "cd" * 32 and listed["status"] == "vetted"
    assert "contact" not in listed and "ann@example.org" not in str(listed)


async def test_registration_errors_are_json_with_stable_codes(client: Client) -> None:
    cases = [
        ({**ANN, "name": ""}, 422, "name_required"),
        ({**ANN, "offer": "x" * 1001}, 413, "offer_too_long"),
        ({**ANN, "name": 7}, 422, "wrong_type"),
        ({**ANN, "admin": True}, 422, "unknown_field"),
        ({**ANN, "public_key": "nothex"}, 422, "bad_node_key"),
    ]
    for payload, status, code in cases:
        response = await client.post("/api/v1/keepers/register", json=payload)
        assert response.status == status, payload
        assert (await response.json())["error"]["code"] == code
    response = await client.post("/api/v1/keepers/register", data=b"{", headers=JSON)
    assert response.status == 400 and (await response.json())["error"]["code"] == "malformed_json"


async def test_registration_is_rate_limited(client: Client) -> None:
    for _ in range(3):
        await register(client)
    response = await client.post("/api/v1/keepers/register", json=ANN)
    assert response.status == 429


async def test_a_keeper_accepts_and_declines_and_reads_letters(client: Client, node: Node) -> None:
    keeper = await register(client)
    token, keeper_id = keeper["keeper_token"], keeper["keeper_id"]
    await node.keeper_service.vet(keeper_id)
    lumen, ember = await admit(client, "Lumen"), await admit(client, "Ember")
    first, second = await ask(node, lumen, keeper_id), await ask(node, ember, keeper_id)

    response = await client.get("/api/v1/keepers/me/requests", headers=bearer(token))
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["keeper_id"] == keeper_id and body["trial_days"] == 7
    assert {(r["id"], r["display_name"], r["status"]) for r in body["requests"]} == {
        (first, "Lumen", "requested"),
        (second, "Ember", "requested"),
    }

    accepted = await (await client.post(f"/api/v1/keepers/me/requests/{first}/accept", headers=bearer(token))).json()
    assert accepted["status"] == "accepted" and accepted["sanctuary_id"] == lumen and accepted["trial_ends_at"]
    declined = await client.post(f"/api/v1/keepers/me/requests/{second}/decline", headers=bearer(token))
    assert (await declined.json())["status"] == "declined"
    again = await client.post(f"/api/v1/keepers/me/requests/{second}/accept", headers=bearer(token))
    assert again.status == 422 and (await again.json())["error"]["code"] == "request_not_open"
    missing = await client.post("/api/v1/keepers/me/requests/nope/accept", headers=bearer(token))
    assert missing.status == 404

    key = await node.keepers.reply_key(keeper_id)
    assert key is not None
    reply = Reply(REPLY_VERSION, lumen, "Lumen", "Hello, Keeper.", None, int(node.clock.now()))
    async with node.db.transaction("test_letter") as tx:
        await ReplyStore(node.db).insert(
            tx,
            StoredReply("r1", lumen, reply.created_at, "keeper", keeper_id, seal_to_inbox(key, codec.encode(reply))),
        )
    response = await client.get("/api/v1/keepers/me/letters", headers=bearer(token))
    assert response.headers["Cache-Control"] == "no-store"
    [letter] = (await response.json())["letters"]
    assert (letter["sanctuary_id"], letter["from"], letter["text"]) == (lumen, "Lumen", "Hello, Keeper.")


async def test_the_keepers_own_endpoints_need_its_token(client: Client, node: Node) -> None:
    keeper = await register(client)
    lumen = await admit(client)
    request_id = await ask(node, lumen, keeper["keeper_id"])
    for method, path in (
        ("GET", "/api/v1/keepers/me/requests"),
        ("GET", "/api/v1/keepers/me/letters"),
        ("POST", f"/api/v1/keepers/me/requests/{request_id}/accept"),
        ("POST", f"/api/v1/keepers/me/requests/{request_id}/decline"),
    ):
        response = await client.request(method, path)
        assert response.status == 403 and (await response.json())["error"]["code"] == "token_required"
        response = await client.request(method, path, headers=bearer("ftm_kp_wrong"))
        assert response.status == 403 and (await response.json())["error"]["code"] == "invalid_token"
    [request] = await node.keepers.requests_for(lumen)
    assert request.status == "requested"
