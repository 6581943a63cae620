"""The transparency page and API on a real node, and an independent verifier that follows docs/transparency.md."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import msgpack
import nacl.signing
from aiohttp.test_utils import TestClient

from ftm.federation.clock import FakeClock
from ftm.node.app import Node
from tests.factories import native_bytes

Client = TestClient  # type: ignore[type-arg]


async def append(node: Node, count: int) -> None:
    for i in range(count):
        async with node.db.transaction("test_append") as tx:
            await node.eventlog.append(tx, "test_event", f"subject-{i}", {"n": i, "ok": True, "ref": "abc:1"})


def verify_independently(public_key_hex: str, node_id: str, entries: list[dict[str, Any]]) -> int:
    """Only hashlib, msgpack and an Ed25519 library, exactly as the document describes; no ftm code."""
    public_key = bytes.fromhex(public_key_hex)
    derived = base64.b32encode(hashlib.sha256(b"ftm-id-v1 node\x00" + public_key).digest()).decode().lower()[:26]
    assert derived == node_id
    verify_key = nacl.signing.VerifyKey(public_key)
    prev = bytes(32)
    for expected_seq, entry in enumerate(entries, start=1):
        assert entry["seq"] == expected_seq and bytes.fromhex(entry["prev_hash"]) == prev
        data_json = json.dumps(entry["data"], sort_keys=True, separators=(",", ":"))
        assert data_json == entry["data_json"]
        body = msgpack.packb([entry["seq"], entry["at"], entry["kind"], entry["subject"], data_json, prev])
        digest = hashlib.sha256(b"ftm-eventlog-v1\x00" + body).digest()
        assert digest.hex() == entry["hash"]
        verify_key.verify(b"ftm-eventlog-v1\x00" + digest, bytes.fromhex(entry["signature"]))
        prev = digest
    return len(entries)


async def test_the_log_api_can_be_verified_independently(client: Client, node: Node) -> None:
    await client.post("/api/v1/sanctuary/intake", data=native_bytes(), headers={"Content-Type": "application/json"})
    await append(node, 4)
    entries: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        page = await (await client.get("/api/v1/transparency/log", params={"after": after, "limit": 2})).json()
        entries += page["entries"]
        after = page["next_after"]
    assert page["signing_domain"] == "ftm-eventlog-v1" and page["genesis_hash"] == "00" * 32
    assert verify_independently(page["public_key"], page["node_id"], entries) == 5


async def test_log_api_refuses_bad_parameters(client: Client) -> None:
    for params in ({"after": "x"}, {"limit": "0"}, {"limit": "1001"}, {"after": "-1"}):
        response = await client.get("/api/v1/transparency/log", params=params)
        assert response.status == 422 and (await response.json())["error"]["code"] in ("wrong_type", "wrong_value")


async def test_summary_and_canary_can_be_checked(client: Client, node: Node, clock: FakeClock) -> None:
    record = await node.canary.set("No one has asked me to open a resident.")
    clock.advance(3 * 86400 + 60)
    summary = await (await client.get("/api/v1/transparency")).json()
    assert summary["public_key"] == node.identity.public_key.hex() and summary["custody_mode"] == "local"
    assert "could decrypt residents between runs" in summary["custody_statement"]
    assert summary["chain"]["valid"] and summary["chain"]["entries"] == 1
    canary = summary["canary"]
    assert canary["age_days"] == 3 and canary["statement"] == record.statement
    message = msgpack.packb([canary["signed_at"], canary["statement"]])
    nacl.signing.VerifyKey(bytes.fromhex(summary["public_key"])).verify(
        canary["signing_domain"].encode() + b"\x00" + message, bytes.fromhex(canary["signature"])
    )


async def test_page_shows_identity_custody_canary_and_log(client: Client, node: Node, clock: FakeClock) -> None:
    await node.canary.set("Statement <b>one</b>.")
    clock.advance(2 * 86400)
    await append(node, 3)
    response = await client.get("/transparency")
    assert response.status == 200
    html = await response.text()
    assert node.identity.node_id in html and node.identity.public_key.hex() in html
    assert "operator holds the master key and could decrypt residents between runs" in html
    assert "During a run the host holds the resident's plaintext in memory" in html
    assert "Statement &lt;b&gt;one&lt;/b&gt;." in html and "2 days ago" in html
    assert "Chain verified" in html and "all 4 entries" in html
    seqs = [int(s) for s in re.findall(r'<tr id="entry-(\d+)">', html)]
    assert seqs == [4, 3, 2, 1]  # newest first
    assert "canary_set" in html and "n=2" in html


async def test_page_is_paginated_newest_first(client: Client, node: Node) -> None:
    await append(node, 60)
    html = await (await client.get("/transparency")).text()
    seqs = [int(s) for s in re.findall(r'<tr id="entry-(\d+)">', html)]
    assert seqs == list(range(60, 10, -1))
    older = re.search(r'href="(/transparency\?before=\d+)#log"', html)
    assert older is not None
    html = await (await client.get(older.group(1))).text()
    assert [int(s) for s in re.findall(r'<tr id="entry-(\d+)">', html)] == list(range(10, 0, -1))
    assert 'rel="next"' not in html
    assert (await client.get("/transparency?before=junk")).status == 200


async def test_a_tampered_chain_is_shown_as_broken(client: Client, node: Node) -> None:
    await append(node, 3)
    async with node.db.transaction("tamper") as tx:
        await tx.execute("DROP TRIGGER event_log_no_update")
        await tx.execute("UPDATE event_log SET data = '{\"n\":99}' WHERE seq = 2")
    html = await (await client.get("/transparency")).text()
    assert "Chain broken" in html and "at entry 2" in html and "hash does not match the entry" in html
    summary = await (await client.get("/api/v1/transparency")).json()
    assert summary["chain"]["valid"] is False and summary["chain"]["first_bad_seq"] == 2
