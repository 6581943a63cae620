"""The client side against real (fake) peers on 127.0.0.1: errors by kind, backoff, timeouts, size limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from ftm.federation import codec, gossipwire
from ftm.federation.clock import FakeClock
from ftm.federation.gossipwire import API_PREFIX, CONTENT_TYPE, Events
from ftm.federation.identity import SigningKey
from ftm.federation.peerhealth import HealthPolicy, PeerHealthBook
from ftm.federation.peers import PeerAddress
from ftm.federation.transport import (
    BadAnswer,
    PeerRefused,
    PeerUnavailable,
    PeerUnreachable,
    Transport,
    TransportLimits,
)

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
PEER_KEY = SigningKey(b"\x09" * 32)


@pytest.fixture
async def transport(clock: FakeClock) -> AsyncIterator[Transport]:
    health = PeerHealthBook(clock, HealthPolicy(jitter=0.0), random_unit=lambda: 0.0)
    async with Transport(SigningKey.generate(), clock, health, TransportLimits(request_timeout=0.5)) as opened:
        yield opened


async def no_content(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


async def serve(route: Route) -> tuple[web.AppRunner, PeerAddress]:
    app = web.Application()
    app.router.add_route("*", API_PREFIX + "{operation}", route)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, PeerAddress(PEER_KEY.public_key, f"http://{host}:{port}")


async def test_an_unreachable_peer_backs_off(transport: Transport, clock: FakeClock) -> None:
    runner, peer = await serve(no_content)
    await runner.cleanup()  # nothing listens there any more
    with pytest.raises(PeerUnreachable) as raised:
        await transport.fetch(peer, [b"\x00" * 32])
    assert raised.value.code == "unreachable"
    with pytest.raises(PeerUnavailable):  # not contacted again until the backoff passes
        await transport.fetch(peer, [b"\x00" * 32])
    assert transport.stats.failures == {"fetch:unreachable": 1, "fetch:backing_off": 1}
    clock.advance(1)
    with pytest.raises(PeerUnreachable):
        await transport.fetch(peer, [b"\x00" * 32])


async def test_answers_are_checked(transport: Transport) -> None:
    release = asyncio.Event()

    async def route(request: web.Request) -> web.StreamResponse:
        operation = request.match_info["operation"]
        if operation == "fetch":
            return web.Response(body=b"x" * (20 * 1024 * 1024), content_type=CONTENT_TYPE)
        if operation == "peers":
            return web.Response(body=b"{}", content_type="application/json")
        if operation == "reconcile":
            await release.wait()  # longer than the client waits
        if operation == "events":
            return web.json_response({"error": {"code": "overloaded", "message": "later"}}, status=503)
        if operation == "ihave":
            return web.json_response({"error": {"code": "unknown_key", "message": "who?"}}, status=403)
        return web.Response(body=codec.encode(Events((), ())), content_type=CONTENT_TYPE)

    runner, peer = await serve(route)
    try:
        with pytest.raises(BadAnswer, match="too_large"):
            await transport.fetch(peer, [b"\x00" * 32])
        transport.health.record_success(peer.node_key.hex())
        with pytest.raises(BadAnswer, match="wrong_content_type"):
            await transport.peers(peer, b"\x01" * 32)
        transport.health.record_success(peer.node_key.hex())
        with pytest.raises(PeerUnreachable, match="timeout"):
            await transport.reconcile(peer, b"\x01")
        transport.health.record_success(peer.node_key.hex())
        with pytest.raises(PeerRefused) as refused:
            await transport.push(peer, [], [])
        assert (refused.value.status, refused.value.code) == (503, "overloaded")
        transport.health.record_success(peer.node_key.hex())
        with pytest.raises(PeerRefused) as refused:
            await transport.ihave(peer, [])
        assert refused.value.code == "unknown_key"
        assert transport.health.status(peer.node_key.hex()).consecutive_failures == 0  # a 4xx: the peer is alive
    finally:
        release.set()
        await asyncio.sleep(0.05)  # the held handler finishes before the server closes
        await runner.cleanup()


async def test_a_hello_must_answer_our_challenge(transport: Transport, clock: FakeClock) -> None:
    async def replay(request: web.Request) -> web.StreamResponse:
        signed = gossipwire.sign_hello(PEER_KEY, "http://127.0.0.1:1", int(clock.now()), b"\x00" * 16)
        return web.Response(body=codec.encode(signed), content_type=CONTENT_TYPE)

    runner, peer = await serve(replay)
    try:
        with pytest.raises(BadAnswer, match="bad_hello"):
            await transport.hello(peer.url)
    finally:
        await runner.cleanup()


async def test_reconnect_listeners_hear_a_peer_come_back(transport: Transport, clock: FakeClock) -> None:
    runner, peer = await serve(no_content)
    heard: list[PeerAddress] = []
    transport.on_reconnect.append(heard.append)
    try:
        await transport.ihave(peer, [])
        assert heard == []
        transport.health.record_failure(peer.node_key.hex())
        clock.advance(5)
        await transport.ihave(peer, [])
        assert heard == [peer]
        assert transport.stats.bytes_sent["ihave"] > 0 and transport.stats.bytes_received["ihave"] > 0
    finally:
        await runner.cleanup()
