"""The node-to-node routes on real servers: signed requests refused by code, bodies checked, answers per event."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest

from ftm.federation import codec
from ftm.federation.clock import FakeClock
from ftm.federation.events import SignedEvent
from ftm.federation.gossipwire import (
    API_PREFIX,
    CONTENT_TYPE,
    MAX_PUSH_BYTES,
    RECONCILE_CONTENT_TYPE,
    Introduce,
    IntroduceAnswer,
    Push,
    PushAnswer,
)
from ftm.federation.identity import SigningKey
from ftm.federation.signedrequests import HEADER_KEY, RequestSigner, b64url
from tests.federation.conftest import MakeGrid
from tests.federation.grid import Grid, GridNode


class Caller:
    """Signs requests to `target` as `key`, and sends whatever it is told to."""

    def __init__(self, target: GridNode, key: SigningKey, clock: FakeClock, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.signer = RequestSigner(key, clock)
        self.session = session

    def url(self, operation: str) -> str:
        return f"{self.target.url}{API_PREFIX}{operation}"

    async def send(
        self,
        operation: str,
        body: bytes,
        *,
        content_type: str = CONTENT_TYPE,
        headers: dict[str, str] | None = None,
        audience: bytes | None = None,
    ) -> tuple[int, Any]:
        url = self.url(operation)
        signed = headers or self.signer.headers("POST", url, body, audience or self.target.public_key)
        stream = io.BytesIO(body)  # aiohttp warns about large bytes bodies
        async with self.session.post(url, data=stream, headers={**signed, "Content-Type": content_type}) as response:
            data = await response.read()
            if response.content_type == "application/json":
                return response.status, (await response.json())["error"]["code"]
            return response.status, data


@pytest.fixture
async def pair(grid: MakeGrid) -> Grid:
    nodes = await grid(2)
    await nodes.attest_all()
    return nodes


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as opened:
        yield opened


def push_body(events: list[SignedEvent]) -> bytes:
    return codec.encode(Push(tuple(events), (0,) * len(events), ()))


async def test_a_peer_push_is_answered_per_event(pair: Grid, clock: FakeClock, session: aiohttp.ClientSession) -> None:
    target, sender = pair.nodes
    posts = pair.posts(sender, 3)
    tampered = SignedEvent(posts[2].body, bytes(64), posts[2].content)
    caller = Caller(target, sender.key, clock, session)
    status, body = await caller.send("events", push_body([posts[0], posts[1], posts[1], tampered]))
    assert status == 200
    answer = codec.decode(PushAnswer, body)
    assert answer.answers == ("ok", "ok", "duplicate", "invalid:bad_signature")


async def test_refused_requests_get_their_codes(pair: Grid, clock: FakeClock, session: aiohttp.ClientSession) -> None:
    target, sender = pair.nodes
    body = push_body(pair.posts(sender, 1))
    peer = Caller(target, sender.key, clock, session)

    forged = peer.signer.headers("POST", peer.url("events"), body, target.public_key)
    forged[HEADER_KEY] = b64url(SigningKey.generate().public_key)
    assert await peer.send("events", body, headers=forged) == (401, "bad_signature")

    once = peer.signer.headers("POST", peer.url("events"), body, target.public_key)
    assert (await peer.send("events", body, headers=once))[0] == 200
    assert await peer.send("events", body, headers=once) == (401, "replayed_nonce")

    stale = Caller(target, sender.key, FakeClock(clock.now() - 301), session)
    assert await stale.send("events", body) == (401, "timestamp_expired")
    assert await peer.send("events", body, audience=sender.public_key) == (401, "wrong_audience")

    stranger = Caller(target, SigningKey.generate(), clock, session)
    assert await stranger.send("events", body) == (403, "unknown_key")
    assert await stranger.send("reconcile", b"\x01", content_type=RECONCILE_CONTENT_TYPE) == (403, "unknown_key")
    async with session.post(peer.url("events"), data=body) as response:
        assert response.status == 400 and (await response.json())["error"]["code"] == "missing_signature_header"


async def test_bodies_are_checked(pair: Grid, clock: FakeClock, session: aiohttp.ClientSession) -> None:
    target, sender = pair.nodes
    peer = Caller(target, sender.key, clock, session)
    assert await peer.send("events", b"\xc1 not msgpack") == (400, "malformed_body")
    assert await peer.send("events", codec.encode({"events": [], "hops": []})) == (400, "malformed_body")
    assert await peer.send("ihave", codec.encode({"ids": [b"short"], "link": ""})) == (400, "malformed_body")
    assert await peer.send("ihave", codec.encode({"ids": [], "link": "marry"})) == (400, "malformed_body")
    assert await peer.send("events", push_body([]), content_type="application/json") == (415, "unsupported_media_type")
    assert await peer.send("events", b"\x00" * (MAX_PUSH_BYTES + 1)) == (413, "body_too_large")
    assert await peer.send("fetch", b"\x00" * (300 * 1024)) == (413, "body_too_large")
    reply = await peer.send("reconcile", b"\x07", content_type=RECONCILE_CONTENT_TYPE)
    assert reply == (400, "reconcile:unsupported_version")
    assert await peer.send("peers", b"x") == (400, "malformed_body")
    introduce = codec.encode(Introduce("ftp://example"))
    assert await peer.send("introduce", introduce) == (400, "bad_url")


async def test_hello_answers_a_challenge(pair: Grid, session: aiohttp.ClientSession) -> None:
    target, sender = pair.nodes
    async with session.get(f"{target.url}{API_PREFIX}hello") as response:
        assert response.status == 400 and (await response.json())["error"]["code"] == "bad_challenge"
    hello = await sender.net.transport.hello(target.url)
    assert (hello.node_key, hello.url) == (target.public_key, target.url)


async def test_a_stranger_may_introduce_itself_but_is_checked(
    pair: Grid, clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    target = pair.nodes[0]
    stranger = SigningKey.generate()
    caller = Caller(target, stranger, clock, session)
    # It names a URL where nothing answers: it stays unverified, and may not gossip.
    status, body = await caller.send("introduce", codec.encode(Introduce("http://127.0.0.1:9")))
    assert status == 200 and codec.decode(IntroduceAnswer, body) == IntroduceAnswer(False)
    assert not target.net.peers.is_verified(stranger.public_key)
    # A node that answers its URL with its own key is verified at once.
    third = await pair.add(bootstrap=[])
    caller = Caller(target, third.key, clock, session)
    status, body = await caller.send("introduce", codec.encode(Introduce(third.url)))
    assert codec.decode(IntroduceAnswer, body) == IntroduceAnswer(True)
    assert target.net.peers.is_verified(third.public_key)
