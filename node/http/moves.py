"""The node-to-node routes of moving a resident, and the forwarding of a moved resident's visitors.

`create_moves_app` is an aiohttp sub-application the node mounts at `movewire.PREFIX` (`/federation/v1/moves/`).
Under threshold custody at the source (release rule R2) two more routes serve: `claim` (the destination signs the
move claim for the keepers) and `finish-claimed` (the transfer's key comes from the keepers). Every route is a
signed request (`ftm.federation.signedrequests`: audience = our key, ±5 minutes, nonce cache),
from a verified peer only; handlers parse, call `ftm.node.arrivals`, and answer. Bodies are `movewire` messages
except `data`'s, which is raw transfer bytes with the move, attempt and offset in the (signed) query. Errors answer
the node's error body `{"error": {"code", "message"}}`:

    400 malformed_body · bad_query · bad_proof     403 unknown_key · not_your_move     404 unknown_move
    409 stale_attempt · refused · gap · bad_transfer · wrong_move · not_staged · no_progress_query
    413 body_too_large · too_large     415 unsupported_media_type

`forwarding_middleware` answers requests for a moved resident's profile (GET) and API (any method, so a message
POSTed to the old node is re-sent to the new one) with a 308 to the same path at its new home.
docs/federation-moves.md is the specification.
"""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ftm.federation.clock import Clock
from ftm.federation.identity import SigningKey
from ftm.federation.peers import PeerStore
from ftm.federation.signedrequests import (
    SIGNED_REQUEST,
    NonceCache,
    RequestVerifier,
    parse_b64url,
    signed_request_middleware,
)
from ftm.node import movewire
from ftm.node.arrivals import ArrivalError, Arrivals
from ftm.node.forwarding import Forwarding
from ftm.node.movewire import (
    CONTENT_TYPE,
    DATA_CONTENT_TYPE,
    ClaimedManifest,
    MoveClaimRequest,
    MoveCommit,
    MoveOffer,
    ProgressQuery,
    TransferManifest,
    WireError,
)

DATA_BODY_BYTES = movewire.CHUNK_BYTES
_RESIDENT_PATH = re.compile(r"^/(api/v1/)?residents/([A-Za-z0-9_-]{1,64})(/[^/]+)?$")


class _Server:
    def __init__(self, arrivals: Arrivals, peers: PeerStore) -> None:
        self.arrivals = arrivals
        self.peers = peers


SERVER = web.AppKey("ftm_moves_server", _Server)


def create_moves_app(arrivals: Arrivals, key: SigningKey, clock: Clock, peers: PeerStore) -> web.Application:
    """The sub-application; mount it with `app.add_subapp(movewire.PREFIX, ...)`."""
    cache = NonceCache()

    def verifier(max_body_bytes: int) -> RequestVerifier:
        return RequestVerifier(key.public_key, clock, cache, max_body_bytes=max_body_bytes)

    def is_data(request: web.Request) -> bool:
        return request.path.endswith("/" + movewire.PATH_DATA)

    def is_message(request: web.Request) -> bool:
        return not is_data(request)

    app = web.Application(
        middlewares=[
            _errors,
            signed_request_middleware(verifier(DATA_BODY_BYTES), is_data),
            signed_request_middleware(verifier(movewire.MAX_MESSAGE_BYTES), is_message),
        ],
        client_max_size=DATA_BODY_BYTES + 1024,
    )
    app[SERVER] = _Server(arrivals, peers)
    for path, handler in (
        (movewire.PATH_OFFER, _offer),
        (movewire.PATH_PROGRESS, _progress),
        (movewire.PATH_DATA, _data),
        (movewire.PATH_FINISH, _finish),
        (movewire.PATH_COMMIT, _commit),
        (movewire.PATH_CLAIM, _claim),
        (movewire.PATH_FINISH_CLAIMED, _finish_claimed),
    ):
        app.router.add_post("/" + path, handler)
    return app


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ArrivalError as error:
        return _error(error.status, error.code, error.message)
    except WireError as error:
        return _error(413 if error.code == "body_too_large" else 400, error.code, error.message)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _signer(request: web.Request) -> bytes:
    """The signing node, which must be a verified peer: moves come only from nodes this one knows."""
    signer = request[SIGNED_REQUEST].key
    if not request.app[SERVER].peers.is_verified(signer):
        raise ArrivalError(403, "unknown_key", "this node takes moves only from verified peers")
    return signer


def _body(request: web.Request, content_type: str = CONTENT_TYPE) -> bytes:
    if request.content_type != content_type:
        raise ArrivalError(415, "unsupported_media_type", f"the body must be {content_type}")
    return request[SIGNED_REQUEST].body


def _answer(data: bytes) -> web.Response:
    return web.Response(body=data, content_type=CONTENT_TYPE)


def _arrivals(request: web.Request) -> Arrivals:
    return request.app[SERVER].arrivals


async def _offer(request: web.Request) -> web.Response:
    source = _signer(request)
    offer = movewire.decode(MoveOffer, _body(request))
    return _answer(await _arrivals(request).offer(source, offer))


async def _progress(request: web.Request) -> web.Response:
    source = _signer(request)
    query = movewire.decode(ProgressQuery, _body(request))
    return _answer(movewire.encode(await _arrivals(request).progress(source, query)))


async def _data(request: web.Request) -> web.Response:
    source = _signer(request)
    chunk = _body(request, DATA_CONTENT_TYPE)
    move_id = parse_b64url(request.query.get("move", ""), movewire.MOVE_ID_BYTES)
    attempt, offset = _count(request, "attempt"), _count(request, "offset")
    if move_id is None:
        raise ArrivalError(400, "bad_query", "move must be 16 bytes of unpadded base64url")
    return _answer(movewire.encode(await _arrivals(request).receive(source, move_id, attempt, offset, chunk)))


def _count(request: web.Request, name: str) -> int:
    text = request.query.get(name, "")
    if not re.fullmatch(r"0|[1-9][0-9]{0,17}", text):
        raise ArrivalError(400, "bad_query", f"{name} must be a non-negative integer")
    return int(text)


async def _finish(request: web.Request) -> web.Response:
    source = _signer(request)
    manifest = movewire.decode(TransferManifest, _body(request))
    return _answer(await _arrivals(request).finish(source, manifest))


async def _claim(request: web.Request) -> web.Response:
    source = _signer(request)
    claim = movewire.decode(MoveClaimRequest, _body(request))
    return _answer(await _arrivals(request).claim(source, claim))


async def _finish_claimed(request: web.Request) -> web.Response:
    source = _signer(request)
    manifest = movewire.decode(ClaimedManifest, _body(request))
    return _answer(await _arrivals(request).finish_claimed(source, manifest))


async def _commit(request: web.Request) -> web.Response:
    source = _signer(request)
    commit = movewire.decode(MoveCommit, _body(request))
    return _answer(await _arrivals(request).commit(source, commit.move_id, commit.moved))


def forwarding_middleware(forwarding: Forwarding) -> Middleware:
    """308 to the new home for a moved resident's profile pages (GET, HEAD) and API (every method)."""

    @web.middleware
    async def forward_moved(request: web.Request, handler: Handler) -> web.StreamResponse:
        match = _RESIDENT_PATH.match(request.path)
        if match is not None and (match[1] or request.method in ("GET", "HEAD")):
            home = await forwarding.home_of(match[2])
            if home is not None:
                return web.Response(
                    status=308,
                    headers={"Location": home + str(request.rel_url), "Cache-Control": "no-store"},  # it may move on
                    text=f"This resident moved to {home}.",
                )
        return await handler(request)

    return forward_moved
