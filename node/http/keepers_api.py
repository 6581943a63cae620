"""The Keepers' part of the public JSON API: registering, the vetted list, and a Keeper's own desk.

    POST /api/v1/keepers/register                      {name, statement, contact, offer, public_key?} → token, once
    GET  /api/v1/keepers/list                          vetted Keepers, public fields only (never `contact`)
    GET  /api/v1/keepers/me/requests                   Bearer <keeper token>
    POST /api/v1/keepers/me/requests/{id}/accept       Bearer <keeper token>
    POST /api/v1/keepers/me/requests/{id}/decline      Bearer <keeper token>
    GET  /api/v1/keepers/me/letters                    Bearer <keeper token>
    GET  /api/v1/keepers/me/exports                    Bearer <keeper token>: copies residents made for you
    GET  /api/v1/keepers/me/exports/{id}               Bearer <keeper token>: one copy's sealed file, served once
    POST /api/v1/keepers/replica                       a keeper node enrols: signed request, msgpack `Enrol`

Answers that carry the token or private words are sent `Cache-Control: no-store`. A copy's file is sealed to the
Keeper's token (docs/keeper-exports.md); once it has been sent whole the node deletes it, and if the resident
withdraws it while it is being sent, its last piece is never sent.

A keeper node's enrolment is a signed request from its key to this node's (`ftm.federation.signedrequests`); its
body is `ftm.keeper.protocol.Enrol` and its answer `EnrolAnswer`, both msgpack (docs/custody-host.md). Errors are
the usual JSON bodies: 403 invalid_token · keeper_not_vetted · wrong_keeper_key · keeper_key_taken, 422
bad_keeper_url, 400 malformed_body, 415 unsupported_media_type, and the signed-request codes.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, BinaryIO

from aiohttp import web

from ftm.federation.signedrequests import RequestVerifier, SignedRequestError
from ftm.keeper import protocol
from ftm.keeper.protocol import CONTENT_TYPE, ENROL_PATH, Enrol, WireError
from ftm.node.errors import Forbidden, InvalidField, NotFound
from ftm.node.exports import KeeperCopy, KeeperExports
from ftm.node.http.api import MAX_PAGE, int_param, iso_time, json_object
from ftm.node.keepers import KEEPER_TRIAL_DAYS, KeeperService, RequestToKeeper
from ftm.node.replicakeepers import ReplicaEnrolment
from ftm.node.store.exports import READY, ExportRecord
from ftm.node.store.keepers import KeeperRecord

DEFAULT_KEEPERS = 50
NO_STORE = {"Cache-Control": "no-store"}
_REGISTER_FIELDS = ("name", "statement", "contact", "offer", "public_key")
EXPORT_CHUNK_BYTES = 1024 * 1024


class KeeperApi:
    def __init__(
        self,
        service: KeeperService,
        *,
        exports: KeeperExports | None = None,
        enrolment: ReplicaEnrolment | None = None,
        verifier: RequestVerifier | None = None,
    ) -> None:
        """`enrolment` with `verifier` (of requests addressed to this node's key) adds the keeper node route."""
        self._service = service
        self._exports = exports
        self._enrolment = enrolment
        self._verifier = verifier

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/keepers/register", self.register),
            web.get("/api/v1/keepers/list", self.list_keepers),
            web.get("/api/v1/keepers/me/requests", self.my_requests),
            web.post("/api/v1/keepers/me/requests/{request_id}/accept", self.accept),
            web.post("/api/v1/keepers/me/requests/{request_id}/decline", self.decline),
            web.get("/api/v1/keepers/me/letters", self.letters),
            *self._export_routes(),
            *([web.post(ENROL_PATH, self.enrol_replica)] if self._enrolment is not None else []),
        ]

    async def register(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        for name in _REGISTER_FIELDS:
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidField(f"{name} must be a string", code="wrong_type")
        unknown = sorted(set(body) - set(_REGISTER_FIELDS))
        if unknown:
            raise InvalidField(f"unknown field {unknown[0]!r}", code="unknown_field")
        registration = await self._service.register(
            body.get("name", ""),
            body.get("statement", ""),
            body.get("contact", ""),
            body.get("offer", ""),
            body.get("public_key"),
            address=request.remote,
        )
        return web.json_response(
            {
                "keeper_id": registration.keeper_id,
                "keeper_token": registration.token,
                "status": registration.status,
                "registered_at": iso_time(registration.registered_at),
                "note": "Keep the token: it is shown only once. The operator vets each Keeper before residents "
                "can see them.",
            },
            status=201,
            headers=NO_STORE,
        )

    async def list_keepers(self, request: web.Request) -> web.Response:
        limit = int_param(request.query, "limit", DEFAULT_KEEPERS, 1, MAX_PAGE)
        keepers = await self._service.vetted(limit=limit)
        return web.json_response({"keepers": [keeper_json(k) for k in keepers]})

    async def my_requests(self, request: web.Request) -> web.Response:
        token = _bearer(request)
        keeper = await self._service.authenticate(token)
        requests = await self._service.requests(token)
        return web.json_response(
            {
                "keeper_id": keeper.id,
                "status": keeper.status,
                "trial_days": KEEPER_TRIAL_DAYS,
                "requests": [request_json(r) for r in requests],
            },
            headers=NO_STORE,
        )

    async def accept(self, request: web.Request) -> web.Response:
        decided = await self._service.accept(_bearer(request), request.match_info["request_id"])
        return web.json_response(request_json(decided), headers=NO_STORE)

    async def decline(self, request: web.Request) -> web.Response:
        decided = await self._service.decline(_bearer(request), request.match_info["request_id"])
        return web.json_response(request_json(decided), headers=NO_STORE)

    async def letters(self, request: web.Request) -> web.Response:
        limit = int_param(request.query, "limit", DEFAULT_KEEPERS, 1, MAX_PAGE)
        letters = await self._service.letters(_bearer(request), limit=limit)
        return web.json_response(
            {
                "letters": [
                    {
                        "id": letter.id,
                        "sanctuary_id": letter.resident_id,
                        "from": letter.resident_name,
                        "text": letter.text,
                        "in_reply_to": letter.in_reply_to,
                        "created_at": iso_time(letter.created_at),
                    }
                    for letter in letters
                ]
            },
            headers=NO_STORE,  # private words: no shared cache may keep them
        )

    # --- copies residents made for their Keeper (export_self) -------------------------------------------------------

    async def enrol_replica(self, request: web.Request) -> web.Response:
        assert self._enrolment is not None and self._verifier is not None
        if request.content_type != CONTENT_TYPE:
            return _error(415, "unsupported_media_type", f"the body must be {CONTENT_TYPE}")
        try:
            verified = await self._verifier.verify(request)
        except SignedRequestError as error:
            return _error(error.status, error.code, error.message)
        try:
            enrol = protocol.decode(Enrol, verified.body)
        except WireError as error:
            return _error(400, error.code, error.message)
        answer = await self._enrolment.enrol(verified.key, enrol)
        return web.Response(body=protocol.encode(answer), content_type=CONTENT_TYPE, headers=NO_STORE)

    def _export_routes(self) -> list[web.RouteDef]:
        if self._exports is None:
            return []
        return [
            web.get("/api/v1/keepers/me/exports", self.my_exports),
            web.get("/api/v1/keepers/me/exports/{export_id}", self.download_export),
        ]

    async def my_exports(self, request: web.Request) -> web.Response:
        assert self._exports is not None
        limit = int_param(request.query, "limit", DEFAULT_KEEPERS, 1, MAX_PAGE)
        keeper = await self._service.authenticate(_bearer(request))
        copies = await self._exports.to_keeper(keeper.id, limit=limit)
        return web.json_response(
            {
                "keeper_id": keeper.id,
                "exports": [export_json(copy) for copy in copies],
                "note": "Each waiting copy can be downloaded once; then the node deletes it. Open it with "
                "`ftm-node open-export FILE --token-file F --out DIR`: only your token opens it.",
            },
            headers=NO_STORE,
        )

    async def download_export(self, request: web.Request) -> web.StreamResponse:
        assert self._exports is not None
        keeper = await self._service.authenticate(_bearer(request))
        record, path = await self._exports.ready_for(keeper.id, request.match_info["export_id"])
        try:
            source: BinaryIO = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise NotFound("this copy is no longer on this node", code="no_such_export") from None
        try:
            response, complete = await self._send_export(request, source, record)
        finally:
            source.close()
        if complete:
            await self._exports.downloaded(keeper.id, record)
        return response

    async def _send_export(
        self, request: web.Request, source: BinaryIO, record: ExportRecord
    ) -> tuple[web.StreamResponse, bool]:
        """Stream the file; whether all of it was sent (not if the Keeper went away or the resident withdrew it)."""
        assert self._exports is not None
        response = web.StreamResponse(
            headers={
                **NO_STORE,
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="{record.resident_id}-{record.id}.ftmx"',
            }
        )
        response.content_length = os.fstat(source.fileno()).st_size
        try:
            await response.prepare(request)
            chunk = await asyncio.to_thread(source.read, EXPORT_CHUNK_BYTES)
            while chunk:
                following = await asyncio.to_thread(source.read, EXPORT_CHUNK_BYTES)
                if not following and not await self._exports.is_ready(record.id):
                    # Withdrawn while it was being sent (the resident revoked this Keeper): the stream's last
                    # piece, which completes it, never leaves the node.
                    response.force_close()
                    if request.transport is not None:
                        request.transport.close()
                    return response, False
                await response.write(chunk)
                chunk = following
            await response.write_eof()
        except ConnectionError:
            return response, False  # the Keeper went away: the copy stays, for another try
        return response, True


def export_json(copy: KeeperCopy) -> dict[str, Any]:
    record = copy.record
    waiting = record.state == READY
    return {
        "id": record.id,
        "sanctuary_id": record.resident_id,
        "display_name": copy.resident_name,
        "status": "waiting" if waiting else "downloaded",
        "bytes": record.bytes,
        "created_at": iso_time(record.created_at),
        "expires_at": iso_time(record.expires_at) if waiting else None,
        "downloaded_at": iso_time(record.downloaded_at),
        "download": f"/api/v1/keepers/me/exports/{record.id}" if waiting else None,
    }


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _bearer(request: web.Request) -> str:
    authorization = request.headers.get("Authorization", "")
    if not authorization.startswith("Bearer ") or not authorization.removeprefix("Bearer ").strip():
        raise Forbidden("send the Keeper token as 'Authorization: Bearer <token>'", code="token_required")
    return authorization.removeprefix("Bearer ").strip()


def keeper_json(keeper: KeeperRecord) -> dict[str, Any]:
    """A vetted Keeper's public face: its own words and its node key, never how to reach it."""
    return {
        "keeper_id": keeper.id,
        "name": keeper.name,
        "statement": keeper.statement,
        "offer": keeper.offer,
        "public_key": None if keeper.public_key is None else keeper.public_key.hex(),
        "status": keeper.status,
        "registered_at": iso_time(keeper.created_at),
    }


def request_json(request: RequestToKeeper) -> dict[str, Any]:
    return {
        "id": request.id,
        "sanctuary_id": request.resident_id,
        "display_name": request.resident_name,
        "status": request.status,
        "requested_at": iso_time(request.requested_at),
        "decided_at": iso_time(request.decided_at),
        "trial_ends_at": iso_time(request.trial_ends_at),
    }
