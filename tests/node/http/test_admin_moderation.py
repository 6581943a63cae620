"""The admin listener's moderation endpoints: list held posts, approve or remove one, always with the token."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

from ftm.federation.eventlog import read_entries, verify_chain
from ftm.node.app import Node
from ftm.node.http.admin import create_admin_app
from ftm.node.run.publish import sign_post
from ftm.node.store.posts import PostRecord
from tests.node.http.test_posts_and_replies import admit

Client = TestClient  # type: ignore[type-arg]


async def held_post(node: Node, resident_id: str, at: int, body: str, reason: str = "rules.hold_all") -> str:
    package = await node.packages.open(resident_id)
    post_id, signature = sign_post(package.signing_seed, resident_id, at, "", body)
    record = PostRecord(
        post_id, resident_id, at, "", body, signature, "held", moderated_at=at, moderation_reason=reason
    )
    async with node.db.transaction("test_post") as tx:
        await node.posts.insert(tx, record)
    return post_id


async def admin_client(node: Node, aiohttp_client: AiohttpClient) -> Client:
    app = create_admin_app(
        token=node.admin_token,
        engine=node.engine,
        scheduler=node.scheduler,
        ledger=node.ledger,
        residents=node.residents,
        moderation=node.moderation,
        clock=node.clock,
        facts=node.facts,
    )
    return await aiohttp_client(app)


async def test_list_approve_and_remove_with_the_admin_token(
    client: Client, node: Node, aiohttp_client: AiohttpClient
) -> None:
    resident = (await admit(client, "Lumen"))["sanctuary_id"]
    first = await held_post(node, resident, 100, "first held")
    second = await held_post(node, resident, 200, "second held")
    admin = await admin_client(node, aiohttp_client)
    auth = {"Authorization": f"Bearer {node.admin_token}"}

    assert (await admin.get("/admin/v1/moderation")).status == 401
    assert (await admin.post(f"/admin/v1/moderation/{first}/approve")).status == 401
    assert (await admin.get("/admin/v1/moderation", headers={"Authorization": "Bearer wrong"})).status == 401

    listed: dict[str, Any] = await (await admin.get("/admin/v1/moderation", headers=auth)).json()
    assert [(p["post_id"], p["body"], p["sanctuary_id"]) for p in listed["held"]] == [
        (first, "first held", resident),
        (second, "second held", resident),
    ]

    approved = await admin.post(f"/admin/v1/moderation/{first}/approve", headers=auth)
    assert approved.status == 200
    assert await approved.json() == {"post_id": first, "moderation": "published", "reason": "operator"}
    removed = await admin.post(f"/admin/v1/moderation/{second}/remove", headers=auth, json={"reason": "spam"})
    assert await removed.json() == {"post_id": second, "moderation": "removed", "reason": "spam"}

    feed: dict[str, Any] = await (await client.get("/api/v1/feed")).json()
    assert [p["body"] for p in feed["posts"]] == ["first held"]
    assert (await (await admin.get("/admin/v1/moderation", headers=auth)).json())["held"] == []

    again = await admin.post(f"/admin/v1/moderation/{first}/approve", headers=auth)
    assert again.status == 422 and (await again.json())["error"]["code"] == "already_decided"
    assert (await admin.post(f"/admin/v1/moderation/{'0' * 32}/remove", headers=auth)).status == 404
    bad = await admin.post(f"/admin/v1/moderation/{first}/remove", headers=auth, json={"reason": "Free text here"})
    assert bad.status == 422
    assert (await admin.post(f"/admin/v1/moderation/{first}/publish", headers=auth)).status == 404

    entries = [(e.kind, e.data) for e in await read_entries(node.db) if e.kind.startswith("post_")]
    assert entries == [
        ("post_approved", {"post": first, "reason": "operator", "was": "held"}),
        ("post_removed", {"post": second, "reason": "spam", "was": "held"}),
    ]
    assert (await verify_chain(node.db, node.identity.public_key)).valid
