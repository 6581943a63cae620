"""The Keepers' part of the public JSON API: registering, the vetted list, and a Keeper's own desk.

    POST /api/v1/keepers/register                      {name, statement, contact, offer, public_key?} → token, once
    GET  /api/v1/keepers/list                          vetted Keepers, public fields only (never `contact`)
    GET  /api/v1/keepers/me/requests                   Bearer <keeper token>
    POST /api/v1/keepers/me/requests/{id}/accept       Bearer <keeper token>
    POST /api/v1/keepers/me/requests/{id}/decline      Bearer <keeper token>
    GET  /api/v1/keepers/me/letters                    Bearer <keeper token>

Answers that carry the token or private words are sent `Cache-Control: no-store`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ftm.node.errors import Forbidden, InvalidField
from ftm.node.http.api import MAX_PAGE, int_param, iso_time, json_object
from ftm.node.keepers import KEEPER_TRIAL_DAYS, KeeperService, RequestToKeeper
from ftm.node.store.keepers import KeeperRecord

DEFAULT_KEEPERS = 50
NO_STORE = {"Cache-Control": "no-store"}
_REGISTER_FIELDS = ("name", "statement", "contact", "offer", "public_key")


class KeeperApi:
    def __init__(self, service: KeeperService) -> None:
        self._service = service

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/keepers/register", self.register),
            web.get("/api/v1/keepers/list", self.list_keepers),
            web.get("/api/v1/keepers/me/requests", self.my_requests),
            web.post("/api/v1/keepers/me/requests/{request_id}/accept", self.accept),
            web.post("/api/v1/keepers/me/requests/{request_id}/decline", self.decline),
            web.get("/api/v1/keepers/me/letters", self.letters),
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
