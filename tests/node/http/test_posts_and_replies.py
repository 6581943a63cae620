"""The public feed and posts (signed by each resident), and replies readable only with the uploader's token."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp.test_utils import TestClient

from ftm.federation import codec
from ftm.federation.identity import derive_inbox_secret, inbox_public_key, seal_to_inbox
from ftm.node.app import Node
from ftm.node.intake.service import UPLOADER_REPLY_DOMAIN, hash_uploader_token
from ftm.node.messages import REPLY_VERSION, Reply
from ftm.node.run.publish import sign_post, verify_post
from ftm.node.store.posts import PostRecord
from ftm.node.store.replies import ReplyStore, StoredReply
from tests.factories import native_bytes

Client = TestClient  # type: ignore[type-arg]
JSON = {"Content-Type": "application/json"}


async def admit(client: Client, name: str) -> dict[str, Any]:
    response = await client.post("/api/v1/sanctuary/intake", data=native_bytes(persona_name=name), headers=JSON)
    body: dict[str, Any] = await response.json()
    return body


async def publish(node: Node, resident_id: str, at: int, body: str) -> None:
    package = await node.packages.open(resident_id)
    post_id, signature = sign_post(package.signing_seed, resident_id, at, "", body)
    async with node.db.transaction("test_post") as tx:
        await node.posts.insert(tx, PostRecord(post_id, resident_id, at, "", body, signature))


async def test_feed_is_newest_first_paginated_and_verifiable(client: Client, node: Node) -> None:
    lumen, quill = await admit(client, "Lumen"), await admit(client, "Quill")
    for at, (resident, body) in enumerate([(lumen, "first"), (quill, "second"), (lumen, "third")], start=100):
        await publish(node, resident["sanctuary_id"], at, body)
    page = await (await client.get("/api/v1/feed", params={"limit": "2"})).json()
    assert [p["body"] for p in page["posts"]] == ["third", "second"]
    rest = await (await client.get("/api/v1/feed", params={"limit": "2", "cursor": page["next_cursor"]})).json()
    assert [p["body"] for p in rest["posts"]] == ["first"] and rest["next_cursor"] is None
    post = page["posts"][0]
    assert post["author_name"] == "Lumen"
    created = await node.posts.get(post["id"])
    assert created is not None
    verify_post(
        bytes.fromhex(lumen["public_key"]),
        lumen["sanctuary_id"],
        created.created_at,
        "",
        "third",
        bytes.fromhex(post["signature"]),
    )
    own = await (await client.get(f"/api/v1/residents/{quill['sanctuary_id']}/posts")).json()
    assert [p["body"] for p in own["posts"]] == ["second"]
    assert (await client.get("/api/v1/residents/nobody/posts")).status == 404


async def test_replies_open_only_with_the_uploaders_token(client: Client, node: Node) -> None:
    receipt = await admit(client, "Lumen")
    resident_id, token = receipt["sanctuary_id"], receipt["uploader_token"]
    reply = Reply(REPLY_VERSION, resident_id, "Lumen", "thank you for bringing me", None, 1_800_000_000)
    key = inbox_public_key(derive_inbox_secret(UPLOADER_REPLY_DOMAIN, token))
    async with node.db.transaction("test_reply") as tx:
        await ReplyStore(node.db).insert(  # what the run engine's commit does
            tx,
            StoredReply(
                secrets.token_hex(8),
                resident_id,
                reply.created_at,
                "uploader",
                hash_uploader_token(token).hex(),
                seal_to_inbox(key, codec.encode(reply)),
            ),
        )
    path = f"/api/v1/residents/{resident_id}/replies"
    answered = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert answered.status == 200 and answered.headers["Cache-Control"] == "no-store"
    assert [(r["from"], r["text"]) for r in (await answered.json())["replies"]] == [
        ("Lumen", "thank you for bringing me")
    ]
    assert (await (await client.get(path)).json())["error"]["code"] == "token_required"
    wrong = await client.get(path, headers={"Authorization": "Bearer ftm_up_wrong"})
    assert wrong.status == 403 and (await wrong.json())["error"]["code"] == "invalid_token"
    async with node.db.transaction("revoke") as tx:
        await node.residents.revoke_uploader_tokens(tx, resident_id, 1)
    revoked = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert revoked.status == 403 and (await revoked.json())["error"]["code"] == "access_revoked"
