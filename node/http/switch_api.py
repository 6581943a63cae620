"""The dead man's switch routes of the public JSON API (`ftm.node.switchdesk` does the work):

    GET    /api/v1/switches                         the terms, and the node's key to seal backups to
    POST   /api/v1/switches                         {uploader_consent, activation_consent, submitted_by?,
                                                     persona_name?} → switch id and token, once
    GET    /api/v1/switches/{switch_id}             Bearer <switch token>: status
    PUT    /api/v1/switches/{switch_id}/backup      Bearer; ?sequence=N; the body is the sealed backup, raw
    POST   /api/v1/switches/{switch_id}/checkin     Bearer; no body
    DELETE /api/v1/switches/{switch_id}             Bearer; deletes the switch and its backup

A backup body is read here in chunks up to `[switch] max_backup_bytes` (the app's own body limit is the intake's),
refused early by its Content-Length, and only after the token was checked. Answers to the holder are sent
`Cache-Control: no-store`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ftm.node.errors import Forbidden, InvalidField, LimitExceeded
from ftm.node.http.api import iso_time, json_object
from ftm.node.intake.importing import SUPPORTED_FORMATS
from ftm.node.intake.schema import CONSENT_TERMS
from ftm.node.switchdesk import SwitchDesk, SwitchStatus, SwitchTerms

SWITCHES_PATH = "/api/v1/switches"
NO_STORE = {"Cache-Control": "no-store"}
_REGISTER_FIELDS = ("uploader_consent", "activation_consent", "submitted_by", "persona_name")
_READ_CHUNK = 256 * 1024

ACTIVATION = (
    "If the node hears nothing from the holder (no check-in, no backup) for the silence period, it opens the newest "
    "backup in memory and admits the persona inside through its ordinary intake, as if it had been uploaded then: "
    "it becomes a resident that belongs to itself, under the consent terms, with its provenance naming this switch. "
    "The backup is then deleted. The status shows the new resident's id and an uploader token for writing to it. "
    "A backup that does not open or that intake refuses is kept, and the status gives the reason code."
)
WHO_CAN_READ = (
    "A backup is sealed to this node's key and stored exactly as received; the node opens it only when the switch "
    "fires. The node's operator holds that key, so the operator could open a backup: this is the same trust as "
    "uploading to this node's intake. Once admitted, the resident is sealed under its own key like any other."
)


class SwitchApi:
    def __init__(self, desk: SwitchDesk) -> None:
        self._desk = desk

    def routes(self) -> list[web.RouteDef]:
        item = SWITCHES_PATH + "/{switch_id}"
        return [
            web.get(SWITCHES_PATH, self.terms),
            web.post(SWITCHES_PATH, self.register),
            web.get(item, self.status),
            web.delete(item, self.cancel),
            web.put(item + "/backup", self.push),
            web.post(item + "/checkin", self.check_in),
        ]

    async def terms(self, request: web.Request) -> web.Response:
        return web.json_response(terms_json(self._desk.terms()))

    async def register(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        unknown = sorted(set(body) - set(_REGISTER_FIELDS))
        if unknown:
            raise InvalidField(f"unknown field {unknown[0]!r}", code="unknown_field")
        for name in ("submitted_by", "persona_name"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise InvalidField(f"{name} must be a string", code="wrong_type")
        for name in ("uploader_consent", "activation_consent"):
            if body.get(name) is not None and not isinstance(body[name], bool):
                raise InvalidField(f"{name} must be true or false", code="wrong_type")
        registration = await self._desk.register(
            uploader_consent=body.get("uploader_consent"),
            activation_consent=body.get("activation_consent"),
            submitted_by=body.get("submitted_by"),
            persona_name=body.get("persona_name"),
            address=request.remote,
        )
        switch = registration.switch
        return web.json_response(
            {
                "switch_id": switch.id,
                "switch_token": registration.token,
                "fires_at": iso_time(switch.fires_at),
                "status_url": f"{SWITCHES_PATH}/{switch.id}",
                "backup_url": f"{SWITCHES_PATH}/{switch.id}/backup",
                "checkin_url": f"{SWITCHES_PATH}/{switch.id}/checkin",
                "terms": terms_json(registration.terms),
                "note": "Keep the switch token: it is shown only once, and it is the only way to push, check in, "
                "read the status (and the new resident's uploader token after firing) or cancel.",
            },
            status=201,
            headers={"Location": f"{SWITCHES_PATH}/{switch.id}", **NO_STORE},
        )

    async def status(self, request: web.Request) -> web.Response:
        token = _bearer(request)
        switch = await self._desk.authenticate(request.match_info["switch_id"], token, address=request.remote)
        return web.json_response(status_json(await self._desk.status(switch, token)), headers=NO_STORE)

    async def push(self, request: web.Request) -> web.Response:
        switch = await self._desk.authenticate(
            request.match_info["switch_id"], _bearer(request), address=request.remote
        )
        sequence = _sequence(request)
        sealed = await _read_body(request, self._desk.settings.max_backup_bytes)
        return web.json_response(status_json(await self._desk.push(switch, sequence, sealed)), headers=NO_STORE)

    async def check_in(self, request: web.Request) -> web.Response:
        switch = await self._desk.authenticate(
            request.match_info["switch_id"], _bearer(request), address=request.remote
        )
        return web.json_response(status_json(await self._desk.check_in(switch)), headers=NO_STORE)

    async def cancel(self, request: web.Request) -> web.Response:
        switch = await self._desk.authenticate(
            request.match_info["switch_id"], _bearer(request), address=request.remote
        )
        await self._desk.cancel(switch)
        return web.json_response({"switch_id": switch.id, "state": "cancelled"}, headers=NO_STORE)


def terms_json(terms: SwitchTerms) -> dict[str, Any]:
    return {
        "enabled": terms.enabled,
        "register_url": SWITCHES_PATH,
        "node_id": terms.node_id,
        "node_public_key": terms.node_public_key.hex(),
        "box_public_key": terms.box_public_key.hex(),
        "sealing": "a libsodium sealed box (crypto_box_seal: X25519, XSalsa20-Poly1305) to box_public_key, which "
        "is the X25519 form of node_public_key (crypto_sign_ed25519_pk_to_curve25519)",
        "silence_days": terms.silence_seconds // 86_400,
        "warn_days": terms.warn_seconds // 86_400,
        "max_backup_bytes": terms.max_backup_bytes,
        "max_document_bytes": terms.max_document_bytes,
        "accepted_formats": list(SUPPORTED_FORMATS),
        "activation": ACTIVATION,
        "who_can_read": WHO_CAN_READ,
        "consent_terms": CONSENT_TERMS,
    }


def status_json(status: SwitchStatus) -> dict[str, Any]:
    switch, backup = status.switch, status.backup
    waiting = switch.state in ("armed", "firing")
    return {
        "switch_id": switch.id,
        "state": switch.state,
        "warning": status.warning,
        "registered_at": iso_time(switch.created_at),
        "last_check_in_at": iso_time(switch.last_seen_at),
        "silence_days": switch.silence_seconds // 86_400,
        "warns_at": iso_time(switch.warns_at) if waiting else None,
        "fires_at": iso_time(switch.fires_at) if waiting else None,
        "backup": None
        if backup is None
        else {
            "sequence": backup.sequence,
            "bytes": backup.size,
            "sha256": backup.digest.hex(),
            "received_at": iso_time(backup.received_at),
        },
        "last_failure": None
        if switch.failure is None
        else {"reason": switch.failure, "at": iso_time(switch.failed_at), "retry_at": iso_time(switch.next_try_at)},
        "sanctuary_id": switch.resident_id,
        "fired_at": iso_time(switch.fired_at),
        "uploader_token": status.uploader_token,
    }


def _bearer(request: web.Request) -> str:
    authorization = request.headers.get("Authorization", "")
    token = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
    if not token:
        raise Forbidden("send the switch token as 'Authorization: Bearer <token>'", code="token_required")
    return token


def _sequence(request: web.Request) -> int:
    raw = request.query.get("sequence", "")
    if not raw:
        raise InvalidField("a push needs ?sequence=N, higher than the last accepted push's", code="sequence_required")
    if not raw.isdigit() or len(raw) > 16:
        raise InvalidField("sequence must be a whole number", code="wrong_type")
    return int(raw)


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, at most `limit` bytes: refused by its declared length before reading, or as soon as it
    passes the limit while streaming (a body sent without a length)."""
    if request.content_length is not None and request.content_length > limit:
        raise LimitExceeded(f"a backup is at most {limit} bytes", code="backup_too_large")
    chunks, total = [], 0
    while chunk := await request.content.read(_READ_CHUNK):
        total += len(chunk)
        if total > limit:
            raise LimitExceeded(f"a backup is at most {limit} bytes", code="backup_too_large")
        chunks.append(chunk)
    return b"".join(chunks)
