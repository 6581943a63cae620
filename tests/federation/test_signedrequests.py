"""Signed node-to-node requests over real aiohttp servers on 127.0.0.1: accepted when right, refused by code."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from ftm.federation.clock import FakeClock
from ftm.federation.identity import SigningKey
from ftm.federation.signedrequests import (
    HEADER_AUDIENCE,
    HEADER_BODY_HASH,
    HEADER_KEY,
    HEADER_NONCE,
    HEADER_TIMESTAMP,
    SIGNED_REQUEST,
    NonceCache,
    NonceCheck,
    RequestSigner,
    RequestVerifier,
    b64url,
    parse_b64url,
    signed_request_middleware,
)

AiohttpServer = Callable[..., Coroutine[Any, Any, TestServer]]
START = 1_800_000_000.0


class Peer:
    """A real server that verifies signed requests under /federation/, and a client session to it."""

    def __init__(self, server: TestServer, verifier: RequestVerifier, key: SigningKey, session: aiohttp.ClientSession):
        self.server = server
        self.verifier = verifier
        self.key = key
        self.session = session

    def url(self, path: str) -> URL:
        return self.server.make_url(path)

    async def send(
        self,
        signer: RequestSigner,
        path: str,
        body: bytes = b"",
        *,
        method: str = "POST",
        audience: bytes | None = None,
    ) -> tuple[int, Any]:
        audience = self.key.public_key if audience is None else audience
        async with signer.request(self.session, method, self.url(path), body=body, audience=audience) as response:
            return response.status, await response.json()

    async def send_raw(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        async with self.session.post(self.url(path), data=body, headers=headers) as response:
            return response.status, await response.json()


async def echo(request: web.Request) -> web.Response:
    verified = request[SIGNED_REQUEST]
    return web.json_response({"key": verified.key.hex(), "body": verified.body.decode(), "target": request.raw_path})


async def open_door(request: web.Request) -> web.Response:
    return web.json_response({"signed": SIGNED_REQUEST in request})


@pytest.fixture
def server_clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def signer() -> RequestSigner:
    return RequestSigner(SigningKey.generate(), FakeClock(START))


@pytest.fixture
async def peer(aiohttp_server: AiohttpServer, server_clock: FakeClock) -> Any:
    key = SigningKey.generate()
    verifier = RequestVerifier(key.public_key, server_clock, NonceCache(max_entries=1000), max_body_bytes=4096)
    app = web.Application(
        middlewares=[signed_request_middleware(verifier, lambda request: request.path.startswith("/federation/"))]
    )
    app.router.add_route("*", "/federation/{tail:.*}", echo)
    app.router.add_get("/public", open_door)
    server = await aiohttp_server(app, host="127.0.0.1")
    async with aiohttp.ClientSession() as session:
        yield Peer(server, verifier, key, session)


async def test_valid_request_is_accepted(peer: Peer, signer: RequestSigner) -> None:
    target = "/federation/a%2Fb/events?since=5&name=a%20b"
    status, body = await peer.send(signer, target, b"hello")
    assert status == 200
    assert body == {"key": signer.key.public_key.hex(), "body": "hello", "target": target}
    status, body = await peer.send(signer, "/federation/reconcile", method="GET")
    assert (status, body["body"]) == (200, "")


async def test_unsigned_routes_are_left_alone(peer: Peer) -> None:
    async with peer.session.get(peer.url("/public")) as response:
        assert await response.json() == {"signed": False}
    async with peer.session.post(peer.url("/federation/events"), data=b"x") as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "missing_signature_header"


async def test_altered_body_is_refused(peer: Peer, signer: RequestSigner) -> None:
    headers = signer.headers("POST", peer.url("/federation/events"), b"signed body", peer.key.public_key)
    status, body = await peer.send_raw("/federation/events", headers, b"other body")
    assert (status, body["error"]["code"]) == (401, "body_hash_mismatch")


async def test_altered_path_or_query_is_refused(peer: Peer, signer: RequestSigner) -> None:
    for signed_path, sent_path in (("/federation/a", "/federation/b"), ("/federation/a?x=1", "/federation/a?x=2")):
        headers = signer.headers("POST", peer.url(signed_path), b"", peer.key.public_key)
        status, body = await peer.send_raw(sent_path, headers, b"")
        assert (status, body["error"]["code"]) == (401, "bad_signature")


async def test_wrong_key_is_refused(peer: Peer, signer: RequestSigner) -> None:
    headers = signer.headers("POST", peer.url("/federation/events"), b"x", peer.key.public_key)
    headers[HEADER_KEY] = b64url(SigningKey.generate().public_key)
    status, body = await peer.send_raw("/federation/events", headers, b"x")
    assert (status, body["error"]["code"]) == (401, "bad_signature")


async def test_request_for_another_node_is_refused(peer: Peer, signer: RequestSigner) -> None:
    status, body = await peer.send(signer, "/federation/events", b"x", audience=SigningKey.generate().public_key)
    assert (status, body["error"]["code"]) == (401, "wrong_audience")


async def test_timestamps_outside_five_minutes_are_refused(peer: Peer, server_clock: FakeClock) -> None:
    key = SigningKey.generate()
    for offset, expected in ((-301, "timestamp_expired"), (301, "timestamp_in_future")):
        status, body = await peer.send(RequestSigner(key, FakeClock(START + offset)), "/federation/events")
        assert (status, body["error"]["code"]) == (401, expected)
    for offset in (-300, 300):
        status, _ = await peer.send(RequestSigner(key, FakeClock(START + offset)), "/federation/events")
        assert status == 200


async def test_replayed_nonce_is_refused(peer: Peer, signer: RequestSigner) -> None:
    headers = signer.headers("POST", peer.url("/federation/events"), b"once", peer.key.public_key)
    assert (await peer.send_raw("/federation/events", headers, b"once"))[0] == 200
    status, body = await peer.send_raw("/federation/events", headers, b"once")
    assert (status, body["error"]["code"]) == (401, "replayed_nonce")
    # The same nonce from a fresh signature (new timestamp) is still a replay.
    nonce = parse_b64url(headers[HEADER_NONCE], 16)
    assert nonce is not None
    fixed = RequestSigner(signer.key, FakeClock(START + 1), nonce=lambda: nonce)
    status, body = await peer.send(fixed, "/federation/events", b"once")
    assert (status, body["error"]["code"]) == (401, "replayed_nonce")


async def test_missing_and_malformed_headers_are_refused(peer: Peer, signer: RequestSigner) -> None:
    good = signer.headers("POST", peer.url("/federation/events"), b"", peer.key.public_key)
    without = {name: value for name, value in good.items() if name != HEADER_AUDIENCE}
    status, body = await peer.send_raw("/federation/events", without, b"")
    assert (status, body["error"]["code"]) == (400, "missing_signature_header")
    for name, value in (
        (HEADER_TIMESTAMP, "-5"),
        (HEADER_TIMESTAMP, "017"),
        (HEADER_NONCE, good[HEADER_NONCE] + "A"),
        (HEADER_BODY_HASH, good[HEADER_BODY_HASH][:-1]),
        (HEADER_KEY, "not base64!"),
    ):
        status, body = await peer.send_raw("/federation/events", {**good, name: value}, b"")
        assert (status, body["error"]["code"]) == (400, "malformed_signature_header"), (name, value)


async def test_unknown_key_is_refused_when_the_node_keeps_a_list(peer: Peer, signer: RequestSigner) -> None:
    peer.verifier.accept_key = lambda key: key != signer.key.public_key
    status, body = await peer.send(signer, "/federation/events")
    assert (status, body["error"]["code"]) == (403, "unknown_key")


async def test_body_over_the_limit_is_refused(peer: Peer, signer: RequestSigner) -> None:
    status, body = await peer.send(signer, "/federation/events", b"x" * 5000)
    assert (status, body["error"]["code"]) == (413, "body_too_large")


def test_nonce_cache_stays_bounded_without_opening_a_replay() -> None:
    cache = NonceCache(max_entries=3)
    key = b"k" * 32
    for n in range(3):
        assert cache.remember(key, bytes([n]) * 16, expires_at=100 + n, now=0) is NonceCheck.NEW
    assert cache.remember(key, b"\x00" * 16, expires_at=100, now=0) is NonceCheck.REPLAYED
    # A fourth evicts the entry expiring first (100); requests expiring at or before it are now refused as old,
    # since the evicted nonce could be among them.
    assert cache.remember(key, b"\x09" * 16, expires_at=110, now=0) is NonceCheck.NEW
    assert len(cache) == 3 and cache.floor == 100
    assert cache.remember(key, b"\x00" * 16, expires_at=100, now=0) is NonceCheck.TOO_OLD
    assert cache.remember(key, b"\x01" * 16, expires_at=101, now=0) is NonceCheck.REPLAYED
    # Entries leave once their request could no longer pass the clock check.
    assert cache.remember(key, b"\x0a" * 16, expires_at=200, now=150) is NonceCheck.NEW
    assert len(cache) == 1


async def test_nonce_cache_under_pressure_refuses_old_requests_over_http(
    aiohttp_server: AiohttpServer, server_clock: FakeClock
) -> None:
    key = SigningKey.generate()
    verifier = RequestVerifier(key.public_key, server_clock, NonceCache(max_entries=4))
    app = web.Application(middlewares=[signed_request_middleware(verifier, lambda request: True)])
    app.router.add_post("/{tail:.*}", echo)
    server = await aiohttp_server(app, host="127.0.0.1")
    async with aiohttp.ClientSession() as session:
        peer = Peer(server, verifier, key, session)
        statuses = []
        for second in range(10):
            status, _ = await peer.send(RequestSigner(SigningKey.generate(), FakeClock(START + second)), "/x")
            statuses.append(status)
        assert statuses == [200] * 10
        assert len(verifier.nonce_cache) == 4
        status, body = await peer.send(RequestSigner(SigningKey.generate(), FakeClock(START)), "/x")
        assert (status, body["error"]["code"]) == (401, "timestamp_expired")


def test_base64url_parsing_is_canonical() -> None:
    data = bytes(range(32))
    text = b64url(data)
    assert parse_b64url(text, 32) == data
    assert parse_b64url(text + "=", 32) is None
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare_bits_set = text[:-1] + alphabet[alphabet.index(text[-1]) | 1]  # 43 chars carry 2 bits too many
    assert parse_b64url(spare_bits_set, 32) is None
    assert parse_b64url(text.replace(text[0], "+"), 32) is None
    assert parse_b64url(b64url(data[:31]), 32) is None


def test_known_vector_from_the_specification() -> None:
    """The worked example in docs/federation.md: keep the two in step."""
    signer = RequestSigner(SigningKey(b"\x01" * 32), FakeClock(1_800_000_000), nonce=lambda: bytes(range(16)))
    audience = SigningKey(b"\x02" * 32).public_key
    headers = signer.headers("post", "http://peer.example/federation/events?since=5", b'{"hello":"world"}', audience)
    assert headers == {
        "FTM-Key": "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w",
        "FTM-Audience": "gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5Q",
        "FTM-Timestamp": "1800000000",
        "FTM-Nonce": "AAECAwQFBgcICQoLDA0ODw",
        "FTM-Content-SHA256": "k6I5cakU5erL8KjSUVTNownDwccvu5kU1Hxg88toFYg",
        "FTM-Signature": "dHs62BaueJUt-IiY04efDEMtW8saKjAlHcAf15q05bLS32f0LoxYvTm_rsSb0z893icR2DC_mPKvgTbATz9xBg",
    }
    verifier = RequestVerifier(audience, FakeClock(1_800_000_100))
    verified = verifier.check("POST", "/federation/events?since=5", headers, b'{"hello":"world"}')
    assert verified.key == signer.key.public_key and verified.nonce == bytes(range(16))
