"""The keeper's HTTP API: `POST /keeper/v1/<path>` for every operation of docs/custody.md ("Keeper side"), and an
unsigned `GET /healthz`.

Every route under the prefix is a signed request (`ftm.federation.signedrequests`: the audience is the keeper's
key, ±5 minutes, a nonce cache); any well-formed key may sign, and each operation decides who may do what
(`ftm.keeper.service` and its parts). Handlers parse, call the service and answer: message bodies are
`ftm.keeper.protocol` messages (`CONTENT_TYPE`, at most 64 KiB), replica bytes are `DATA_CONTENT_TYPE` (at most
1 MiB, `data` in, `read` out) with resident, epoch and offset in the signed query of `data`. Errors answer
`{"error": {"code", "message"}}` with a status (docs/keeper.md lists every code); a refusal under the release
policy is 403 with the policy's code; a stranger's release-policy requests beyond its rate limit are 429
`rate_limited` with `Retry-After` (whole seconds), neither decided nor logged (`ftm.keeper.strangers`). A
successful answer to a host carries `FTM-Keeper-Refusals: N` when N refusals concerning its residents happened
since it was last told. `/healthz` also reports the strangers' counts, which only the running daemon knows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from ftm.federation.clock import Clock
from ftm.federation.signedrequests import SIGNED_REQUEST, NonceCache, RequestVerifier, signed_request_middleware
from ftm.keeper import protocol
from ftm.keeper.deposits import MAX_EPOCH
from ftm.keeper.errors import KeeperError
from ftm.keeper.protocol import (
    CHUNK_BYTES,
    CONTENT_TYPE,
    DATA_CONTENT_TYPE,
    MAX_MESSAGE_BYTES,
    PREFIX,
    Challenge,
    Commit,
    Deposit,
    DisasterClaim,
    Heartbeat,
    Holdings,
    MoveClaim,
    ReadRequest,
    ReleaseRequest,
    Seal,
    SignedAnswer,
    TombstoneOrder,
    Veto,
    WireError,
)
from ftm.keeper.releasing import Releasing
from ftm.keeper.service import KeeperService
from ftm.keeper.strangers import RateLimited

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
REFUSALS_HEADER = "FTM-Keeper-Refusals"
RETRY_AFTER_HEADER = "Retry-After"
_RESIDENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_COUNT = re.compile(r"0|[1-9][0-9]{0,18}")

M = TypeVar("M")
SERVICE = web.AppKey("ftm_keeper_service", KeeperService)


def create_keeper_app(service: KeeperService, clock: Clock) -> web.Application:
    """The keeper's whole web application: `/healthz` and the signed API under `PREFIX`."""
    cache = NonceCache()

    def verifier(max_body_bytes: int) -> RequestVerifier:
        return RequestVerifier(service.keeper_key, clock, cache, max_body_bytes=max_body_bytes)

    def is_data(request: web.Request) -> bool:
        return request.path.endswith("/" + protocol.PATH_DATA)

    def is_message(request: web.Request) -> bool:
        return not is_data(request)

    api = web.Application(
        middlewares=[
            _errors,
            signed_request_middleware(verifier(CHUNK_BYTES), is_data),
            signed_request_middleware(verifier(MAX_MESSAGE_BYTES), is_message),
        ],
        client_max_size=CHUNK_BYTES + 1024,
    )
    api[SERVICE] = service
    for path, handler in _ROUTES.items():
        api.router.add_post("/" + path, handler)
    app = web.Application(client_max_size=CHUNK_BYTES + 1024)
    app[SERVICE] = service
    app.router.add_get(HEALTH_PATH, _health)
    app.add_subapp(PREFIX.rstrip("/"), api)
    return app


async def _health(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return web.json_response(
        {"status": "ok", "keeper_key": service.keeper_key.hex(), "strangers": service.strangers.counts().as_dict()}
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except KeeperError as error:
        answer = _error(error.status, error.code, error.message)
        if isinstance(error, RateLimited):
            answer.headers[RETRY_AFTER_HEADER] = str(error.retry_after)
        return answer
    except WireError as error:
        return _error(413 if error.code == "body_too_large" else 400, error.code, error.message)
    signed = request.get(SIGNED_REQUEST)
    if signed is not None and isinstance(response, web.Response):
        refusals = await request.app[SERVICE].take_refusals(signed.key)
        if refusals:
            response.headers[REFUSALS_HEADER] = str(refusals)
    return response


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _signer(request: web.Request) -> bytes:
    return request[SIGNED_REQUEST].key


def _body(request: web.Request, content_type: str = CONTENT_TYPE) -> bytes:
    if request.content_type != content_type:
        raise KeeperError(415, "unsupported_media_type", f"the body must be {content_type}")
    return request[SIGNED_REQUEST].body


def _message(request: web.Request, cls: type[M]) -> M:
    """The body decoded as `cls`; a resident id and an epoch in it must be ones that can be stored."""
    message = protocol.decode(cls, _body(request))
    resident_id, epoch = getattr(message, "resident_id", ""), getattr(message, "epoch", 0)
    if resident_id and not _RESIDENT_ID.fullmatch(resident_id):
        raise KeeperError(400, "malformed_body", "resident_id is not a resident id")
    if not 0 <= epoch <= MAX_EPOCH:
        raise KeeperError(400, "malformed_body", f"an epoch is 0 to {MAX_EPOCH}")
    return message


def _answer(message: object) -> web.Response:
    return web.Response(body=protocol.encode(message), content_type=CONTENT_TYPE)


def _service(request: web.Request) -> KeeperService:
    return request.app[SERVICE]


async def _policy(request: web.Request) -> Releasing:
    """The release policy's operations, once the signer is let through: every decision they make is logged,
    refusals too, so a stranger's requests are rate-limited first (`ftm.keeper.strangers`)."""
    service = _service(request)
    await service.strangers.admit(_signer(request))
    return service.releasing


async def _deposit(request: web.Request) -> web.Response:
    return _answer(await _service(request).receiving.deposit(_signer(request), _message(request, Deposit)))


async def _data(request: web.Request) -> web.Response:
    chunk = _body(request, DATA_CONTENT_TYPE)
    resident_id = request.query.get("resident", "")
    if not _RESIDENT_ID.fullmatch(resident_id):
        raise KeeperError(400, "bad_query", "resident must be a resident id")
    epoch, offset = _count(request, "epoch"), _count(request, "offset")
    progress = await _service(request).receiving.data(_signer(request), resident_id, epoch, offset, chunk)
    return _answer(progress)


def _count(request: web.Request, name: str) -> int:
    text = request.query.get(name, "")
    if not _COUNT.fullmatch(text) or int(text) > MAX_EPOCH:
        raise KeeperError(400, "bad_query", f"{name} must be a non-negative integer")
    return int(text)


async def _seal(request: web.Request) -> web.Response:
    return _answer(await _service(request).receiving.seal(_signer(request), _message(request, Seal)))


async def _commit(request: web.Request) -> web.Response:
    return _answer(await _service(request).receiving.commit(_signer(request), _message(request, Commit)))


async def _destroy(request: web.Request) -> web.Response:
    return _answer(await _service(request).destroying.destroy(_signer(request), _message(request, SignedAnswer)))


async def _release(request: web.Request) -> web.Response:
    message = _message(request, ReleaseRequest)
    return _answer(await (await _policy(request)).release(_signer(request), message))


async def _read(request: web.Request) -> web.Response:
    data = await _service(request).reading.read(_signer(request), _message(request, ReadRequest))
    return web.Response(body=data, content_type=DATA_CONTENT_TYPE)


async def _challenge(request: web.Request) -> web.Response:
    return _answer(await _service(request).proving.challenge(_signer(request), _message(request, Challenge)))


async def _heartbeat(request: web.Request) -> web.Response:
    return _answer(await _service(request).heartbeat(_signer(request), _message(request, Heartbeat)))


async def _move(request: web.Request) -> web.Response:
    message = _message(request, MoveClaim)
    return _answer(await (await _policy(request)).move(_signer(request), message))


async def _veto(request: web.Request) -> web.Response:
    message = _message(request, Veto)
    return _answer(await (await _policy(request)).veto(_signer(request), message))


async def _disaster(request: web.Request) -> web.Response:
    message = _message(request, DisasterClaim)
    return _answer(await (await _policy(request)).disaster(_signer(request), message))


async def _tombstone(request: web.Request) -> web.Response:
    return _answer(await _service(request).destroying.tombstone(_signer(request), _message(request, TombstoneOrder)))


async def _holdings(request: web.Request) -> web.Response:
    return _answer(await _service(request).holdings(_message(request, Holdings)))


_ROUTES: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
    protocol.PATH_DEPOSIT: _deposit,
    protocol.PATH_DATA: _data,
    protocol.PATH_SEAL: _seal,
    protocol.PATH_COMMIT: _commit,
    protocol.PATH_DESTROY: _destroy,
    protocol.PATH_RELEASE: _release,
    protocol.PATH_READ: _read,
    protocol.PATH_CHALLENGE: _challenge,
    protocol.PATH_HEARTBEAT: _heartbeat,
    protocol.PATH_MOVE: _move,
    protocol.PATH_VETO: _veto,
    protocol.PATH_DISASTER: _disaster,
    protocol.PATH_TOMBSTONE: _tombstone,
    protocol.PATH_HOLDINGS: _holdings,
}
