"""The server side of the node-to-node API: an aiohttp sub-application the node mounts at `/federation/v1/`.

Handlers parse, check, call gossip, reconciliation or membership, and encode; they hold no logic of their own.
Every route but `GET hello` is a signed request, verified by `signedrequests` middleware before its handler runs
(audience = our key, ±5 minutes, nonce cache shared by all routes): the push route reads bodies up to
`MAX_PUSH_BYTES`, the others up to `MAX_MESSAGE_BYTES`. Only verified peers may use the gossip routes; anyone who
signs may introduce itself. Bodies are msgpack (`gossipwire.CONTENT_TYPE`) except reconciliation's
(`RECONCILE_CONTENT_TYPE`). Errors answer the node's error body `{"error": {"code", "message"}}`:

    400 malformed_body · bad_url · bad_challenge · reconcile:<code>    403 unknown_key    413 body_too_large
    415 unsupported_media_type    503 overloaded (with Retry-After) · not_ready

docs/federation.md is the specification.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from ftm.federation import codec, gossipwire
from ftm.federation.antientropy import AntiEntropy
from ftm.federation.clock import Clock
from ftm.federation.gossip import Gossip, Overloaded
from ftm.federation.gossipview import LinkChange
from ftm.federation.gossipwire import (
    CONTENT_TYPE,
    MAX_MESSAGE_BYTES,
    MAX_PUSH_BYTES,
    RECONCILE_CONTENT_TYPE,
    Fetch,
    IHave,
    Introduce,
    IntroduceAnswer,
    Push,
    WireError,
)
from ftm.federation.identity import SigningKey
from ftm.federation.membership import Membership
from ftm.federation.peers import PeerStore
from ftm.federation.reconcile import ReconcileError
from ftm.federation.signedrequests import (
    SIGNED_REQUEST,
    NonceCache,
    RequestVerifier,
    parse_b64url,
    signed_request_middleware,
)

RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True, slots=True)
class FederationServer:
    """What the routes serve from."""

    key: SigningKey
    clock: Clock
    peers: PeerStore
    gossip: Gossip
    antientropy: AntiEntropy
    membership: Membership


FEDERATION_SERVER = web.AppKey("ftm_federation_server", FederationServer)


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def create_federation_app(server: FederationServer, nonce_cache: NonceCache | None = None) -> web.Application:
    """The sub-application; mount it with `app.add_subapp(gossipwire.API_PREFIX, ...)`."""
    cache = nonce_cache if nonce_cache is not None else NonceCache()
    own_key = server.key.public_key

    def verifier(max_body_bytes: int) -> RequestVerifier:
        return RequestVerifier(own_key, server.clock, cache, max_body_bytes=max_body_bytes)

    def is_push(request: web.Request) -> bool:
        return _operation(request) == gossipwire.PATH_EVENTS

    def is_other_signed(request: web.Request) -> bool:
        return _operation(request) not in (gossipwire.PATH_EVENTS, gossipwire.PATH_HELLO)

    app = web.Application(
        middlewares=[
            _error_middleware,
            signed_request_middleware(verifier(MAX_PUSH_BYTES), is_push),
            signed_request_middleware(verifier(MAX_MESSAGE_BYTES), is_other_signed),
        ],
        client_max_size=MAX_PUSH_BYTES + 1024,
    )
    app[FEDERATION_SERVER] = server
    app.router.add_get("/" + gossipwire.PATH_HELLO, _hello)
    for path, handler in (
        (gossipwire.PATH_INTRODUCE, _introduce),
        (gossipwire.PATH_EVENTS, _push),
        (gossipwire.PATH_IHAVE, _ihave),
        (gossipwire.PATH_FETCH, _fetch),
        (gossipwire.PATH_RECONCILE, _reconcile),
        (gossipwire.PATH_PEERS, _peers),
    ):
        app.router.add_post("/" + path, handler)
    return app


def _operation(request: web.Request) -> str:
    return request.path.rsplit("/", 1)[-1]


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except _Refusal as refusal:
        return _error(refusal.status, refusal.code, refusal.message)
    except WireError as error:
        return _error(413 if error.code == "body_too_large" else 400, error.code, error.message)
    except Overloaded as error:
        response = _error(503, "overloaded", str(error))
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _msgpack(message: object) -> web.Response:
    return web.Response(body=codec.encode(message), content_type=CONTENT_TYPE)


def _server(request: web.Request) -> FederationServer:
    return request.app[FEDERATION_SERVER]


def _body(request: web.Request, content_type: str = CONTENT_TYPE) -> bytes:
    body = request[SIGNED_REQUEST].body
    if request.content_type != content_type:
        raise _Refusal(415, "unsupported_media_type", f"the body must be {content_type}")
    return body


def _peer_key(request: web.Request) -> bytes:
    """The signer, who must be a verified peer to use the gossip routes."""
    key = request[SIGNED_REQUEST].key
    if not _server(request).peers.is_verified(key):
        raise _Refusal(403, "unknown_key", "this node does not gossip with that key; introduce yourself first")
    return key


async def _hello(request: web.Request) -> web.Response:
    server = _server(request)
    challenge = parse_b64url(request.query.get("challenge", ""), gossipwire.CHALLENGE_BYTES)
    if challenge is None:
        raise _Refusal(400, "bad_challenge", "challenge must be 16 bytes of unpadded base64url")
    url = server.membership.own_url
    if url is None:
        raise _Refusal(503, "not_ready", "the node does not know its own URL yet")
    return _msgpack(gossipwire.sign_hello(server.key, url, int(server.clock.now()), challenge))


async def _introduce(request: web.Request) -> web.Response:
    body = _body(request)
    introduce = gossipwire.decode(Introduce, body)
    key = request[SIGNED_REQUEST].key
    verified = await _server(request).membership.on_introduce(key, introduce.url)
    return _msgpack(IntroduceAnswer(verified))


async def _push(request: web.Request) -> web.Response:
    origin = _peer_key(request)
    push = gossipwire.decode(Push, _body(request), MAX_PUSH_BYTES)
    return _msgpack(await _server(request).gossip.receive_push(origin, push))


async def _ihave(request: web.Request) -> web.Response:
    origin = _peer_key(request)
    ihave = gossipwire.decode(IHave, _body(request))
    await _server(request).gossip.receive_ihave(origin, ihave.ids, LinkChange(ihave.link))
    return web.Response(status=204)


async def _fetch(request: web.Request) -> web.Response:
    origin = _peer_key(request)
    fetch = gossipwire.decode(Fetch, _body(request))
    return _msgpack(await _server(request).gossip.serve_fetch(origin, fetch))


async def _reconcile(request: web.Request) -> web.Response:
    _peer_key(request)
    message = _body(request, RECONCILE_CONTENT_TYPE)
    try:
        reply = _server(request).antientropy.respond(message)
    except ReconcileError as error:
        raise _Refusal(400, f"reconcile:{error.code}", error.message) from None
    return web.Response(body=reply, content_type=RECONCILE_CONTENT_TYPE)


async def _peers(request: web.Request) -> web.Response:
    origin = _peer_key(request)
    if request[SIGNED_REQUEST].body:
        raise _Refusal(400, "malformed_body", "the peers request has an empty body")
    return _msgpack(_server(request).membership.peer_list_for(origin))
