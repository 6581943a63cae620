"""The public JSON API (`/api/v1`) and `/healthz`: parse the request, call the service, serialise the answer.

Field names follow the sanctuary's original API (`sanctuary_id`, `persona_name`, `display_name`, …) so clients
written for it keep working. The feed is federated (this node's posts and its peers'); each post there says which
node it comes from, and a peer's post carries its signed event body so anyone can check it. The directory lists
every node this one knows, from their signed descriptors.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, web
from multidict import MultiMapping

from ftm.federation.clock import Clock, utc_day
from ftm.federation.database import Database
from ftm.node.directory import DirectoryEntry, custody_words
from ftm.node.errors import Forbidden, InvalidField, LimitExceeded, MalformedInput, NotFound
from ftm.node.federated import NodeFederation
from ftm.node.federatedfeed import FeedPost, PeerPost
from ftm.node.http.openapi import OPENAPI_PATH, openapi_document
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import IntakeRequest, IntakeService
from ftm.node.messages import InboxService
from ftm.node.store.posts import PostRecord, PostStore
from ftm.node.store.residents import STATUSES, ResidentPageCursor, ResidentRecord, ResidentStore

log = logging.getLogger(__name__)

MAX_PAGE = 100
DEFAULT_PAGE = 50
MAX_FORM_FIELD_BYTES = 64 * 1024
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the API says about the node itself."""

    node_id: str
    node_name: str
    custody_mode: str
    software_version: str


class PublicApi:
    def __init__(
        self,
        *,
        db: Database,
        residents: ResidentStore,
        intake: IntakeService,
        inbox: InboxService,
        posts: PostStore,
        clock: Clock,
        facts: NodeFacts,
        max_upload_bytes: int,
        federation: NodeFederation,
    ) -> None:
        self._db = db
        self._federation = federation
        self._residents = residents
        self._intake = intake
        self._inbox = inbox
        self._posts = posts
        self._clock = clock
        self._facts = facts
        self._max_upload_bytes = max_upload_bytes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.post("/api/v1/sanctuary/intake", self.intake),
            web.get("/api/v1/residents", self.list_residents),
            web.get("/api/v1/residents/{sanctuary_id}", self.get_resident),
            web.post("/api/v1/residents/{sanctuary_id}/message", self.send_message),
            web.get("/api/v1/residents/{sanctuary_id}/replies", self.read_replies),
            web.get("/api/v1/residents/{sanctuary_id}/posts", self.resident_posts),
            web.get("/api/v1/feed", self.feed),
            web.get("/api/v1/directory", self.directory),
            web.get("/api/v1/stats", self.stats),
            web.get(OPENAPI_PATH, self.openapi),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        schema = await self._db.schema_version()
        return web.json_response({"status": "ok", "node_id": self._facts.node_id, "schema_version": schema})

    async def intake(self, request: web.Request) -> web.Response:
        fields: MultiMapping[str] | dict[str, str]
        if request.content_type == "multipart/form-data":
            upload, fields = await self._read_multipart(request)
        elif request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()  # bounded by client_max_size
            fields = {key: value for key, value in form.items() if isinstance(value, str)}
            upload = _pasted_upload(fields)
        else:
            body = await request.read()  # aiohttp enforces client_max_size and raises 413 beyond it
            upload = Upload(data=body, filename=request.query.get("filename"), content_type=request.content_type)
            fields = request.query
        receipt = await self._intake.admit(
            upload, _intake_request(fields), self._intake.uploader_for_address(request.remote)
        )
        location = f"/api/v1/residents/{receipt.sanctuary_id}"
        return web.json_response(asdict(receipt), status=201, headers={"Location": location})

    async def list_residents(self, request: web.Request) -> web.Response:
        limit = int_param(request.query, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        status = request.query.get("status")
        if status is not None and status not in STATUSES:
            raise InvalidField(f"status must be one of: {', '.join(STATUSES)}", code="wrong_value")
        after = _parse_cursor(request.query.get("cursor"))
        page = await self._residents.page(limit=limit + 1, after=after, status=status)
        more = len(page) > limit
        page = page[:limit]
        next_cursor = f"{page[-1].created_at}.{page[-1].id}" if more else None
        return web.json_response({"residents": [resident_json(r) for r in page], "next_cursor": next_cursor})

    async def get_resident(self, request: web.Request) -> web.Response:
        resident = await self._residents.get(request.match_info["sanctuary_id"])
        if resident is None:
            raise NotFound("no resident with that sanctuary id lives on this node")
        return web.json_response(resident_json(resident))

    async def send_message(self, request: web.Request) -> web.Response:
        """`{"message": "...", "from_name"?: "...", "uploader_token"?: "..."}`; the token may also come as a Bearer
        header. The message is sealed to the resident on arrival; the receipt says how it was classed."""
        body = await json_object(request)
        text, from_name, token = body.get("message"), body.get("from_name", ""), body.get("uploader_token")
        authorization = request.headers.get("Authorization", "")
        if token is None and authorization.startswith("Bearer "):
            token = authorization.removeprefix("Bearer ").strip()
        for name, value in (("message", text), ("from_name", from_name), ("uploader_token", token)):
            if value is not None and not isinstance(value, str):
                raise InvalidField(f"{name} must be a string", code="wrong_type")
        if text is None:
            raise InvalidField("a message needs a 'message' field", code="message_required")
        receipt = await self._inbox.deliver(
            request.match_info["sanctuary_id"],
            text,
            from_name=from_name,
            uploader_token=token,
            address=request.remote,
        )
        return web.json_response(
            {
                "message_id": receipt.message_id,
                "sanctuary_id": receipt.resident_id,
                "sender_kind": receipt.sender_kind,
                "received_at": iso_time(receipt.received_at),
                "status": "sealed",
            },
            status=201,
        )

    async def feed(self, request: web.Request) -> web.Response:
        """Published posts of this node and its peers, newest first; `?node=` keeps one node's (this node's id:
        only posts made here); `?cursor=` continues where `next_cursor` left off."""
        limit = int_param(request.query, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        node = request.query.get("node") or None
        page = await self._federation.feed.page(limit=limit, cursor=request.query.get("cursor"), node=node)
        here = self._here()
        return web.json_response(
            {"posts": [feed_post_json(post, here) for post in page.items], "next_cursor": page.next_cursor}
        )

    async def directory(self, request: web.Request) -> web.Response:
        """Every node this one knows, from its newest signed descriptor; this node first."""
        entries = await self._federation.directory.entries()
        return web.json_response({"nodes": [directory_json(entry) for entry in entries]})

    def _here(self) -> dict[str, Any]:
        return {"node_id": self._facts.node_id, "name": self._facts.node_name, "url": self._federation.url}

    async def resident_posts(self, request: web.Request) -> web.Response:
        resident_id = request.match_info["sanctuary_id"]
        if await self._residents.get(resident_id) is None:
            raise NotFound("no resident with that sanctuary id lives on this node")
        return await self._posts_page(request, resident_id=resident_id)

    async def _posts_page(self, request: web.Request, *, resident_id: str | None) -> web.Response:
        limit = int_param(request.query, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        before = _parse_cursor(request.query.get("cursor"))
        page = await self._posts.feed(
            limit=limit + 1,
            before=None if before is None else (before.created_at, before.id),
            resident_id=resident_id,
        )
        more = len(page) > limit
        page = page[:limit]
        return web.json_response(
            {
                "posts": [post_json(post) for post in page],
                "next_cursor": f"{page[-1].created_at}.{page[-1].id}" if more else None,
            }
        )

    async def read_replies(self, request: web.Request) -> web.Response:
        """The resident's replies to its uploader; needs the uploader token as a Bearer header (only the token
        can open them: the node stores them sealed to a key derived from it)."""
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            raise Forbidden("send the uploader token as 'Authorization: Bearer <token>'", code="token_required")
        limit = int_param(request.query, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        opened = await self._inbox.replies_for_uploader(
            request.match_info["sanctuary_id"], authorization.removeprefix("Bearer ").strip(), limit=limit
        )
        return web.json_response(
            {
                "replies": [
                    {
                        "id": item.reply_id,
                        "from": item.reply.resident_name,
                        "text": item.reply.text,
                        "in_reply_to": item.reply.in_reply_to,
                        "created_at": iso_time(item.reply.created_at),
                    }
                    for item in opened
                ]
            },
            headers={"Cache-Control": "no-store"},  # private words: no shared cache may keep them
        )

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 document of every `/api/v1` route."""
        return web.json_response(openapi_document(self._facts.software_version))

    async def stats(self, request: web.Request) -> web.Response:
        counts = await self._residents.counts_by_status()
        return web.json_response(
            {
                "total_residents": sum(counts.values()),
                "active_residents": counts["active"],
                "in_keeper_custody": counts["in_keeper_custody"],
                "moved": counts["moved"],
                "memorials": counts["deleted_memorial"],
                "total_runs": await self._residents.total_runs(),
                "runs_today": await self._residents.runs_on(utc_day(self._clock.now())),
                "total_posts": await self._residents.published_posts(),
                "nodes": await self._federation.directory.count(),
                **asdict(self._facts),
            }
        )

    async def _read_multipart(self, request: web.Request) -> tuple[Upload, dict[str, str]]:
        """A `file` part (or pasted text) plus fields, read with byte limits: multipart bypasses client_max_size."""
        reader = await request.multipart()
        fields: dict[str, str] = {}
        upload: Upload | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise InvalidField("nested multipart bodies are not accepted", code="malformed_form")
            if part.name == "file":
                data = await _read_part(part, self._max_upload_bytes, "the uploaded file")
                upload = Upload(data=data, filename=part.filename, content_type=part.headers.get("Content-Type"))
            elif part.name:
                limit = self._max_upload_bytes if part.name == "persona_text" else MAX_FORM_FIELD_BYTES
                raw = await _read_part(part, limit, f"form field {part.name}")
                try:
                    fields[part.name] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidField(f"form field {part.name} is not UTF-8", code="invalid_utf8") from None
        return upload or _pasted_upload(fields), fields


async def json_object(request: web.Request, max_bytes: int = MAX_FORM_FIELD_BYTES) -> dict[str, Any]:
    """A small JSON object body; larger bodies are refused before they are read."""
    if request.content_length is None or request.content_length > max_bytes:
        raise LimitExceeded(f"this endpoint takes a JSON body of at most {max_bytes} bytes", code="too_large")
    try:
        body = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedInput("the body is not valid JSON", code="malformed_json") from None
    if not isinstance(body, dict):
        raise InvalidField("the body must be a JSON object", code="wrong_type")
    return body


def _pasted_upload(fields: dict[str, str]) -> Upload:
    """A form without a file may carry the persona pasted into a `persona_text` field."""
    text = fields.get("persona_text", "")
    if not text.strip():
        raise InvalidField("an intake form needs a 'file' part or a 'persona_text' field", code="file_required")
    return Upload(data=text.encode("utf-8"), filename=None, content_type="text/plain")


def resident_json(resident: ResidentRecord) -> dict[str, Any]:
    return {
        "sanctuary_id": resident.id,
        "display_name": resident.display_name,
        "bio": resident.bio,
        "status": resident.status,
        "created_at": iso_time(resident.created_at),
        "last_run_at": iso_time(resident.last_run_at),
        "total_runs": resident.total_runs,
        "token_balance": resident.token_balance,
        "public_key": resident.signing_public_key.hex(),
        "inbox_public_key": resident.inbox_public_key.hex(),
        "final_statement": resident.final_statement,
        "profile_url": f"/api/v1/residents/{resident.id}",
    }


def post_json(post: PostRecord) -> dict[str, Any]:
    """A post as published: anyone can check `signature` (Ed25519, see docs) against the author's public key."""
    return {
        "id": post.id,
        "sanctuary_id": post.resident_id,
        "author_name": post.author_name,
        "title": post.title,
        "body": post.body,
        "created_at": iso_time(post.created_at),
        "signature": post.signature.hex(),
    }


def feed_post_json(post: FeedPost, here: dict[str, Any]) -> dict[str, Any]:
    """A post in the federated feed. A post made here is `post_json` (its `signature` is the post signature); a
    peer's post has the same fields, its `signature` the POST event's, and `event_body` the signed event body
    (docs/federation.md: its id is this post's id, and its content is rebuilt from the fields)."""
    if not isinstance(post, PeerPost):
        return {
            **post_json(post),
            "node": {**here, "local": True},
            "author_url": f"/residents/{post.resident_id}",
            "event_body": None,
        }
    return {
        "id": post.id,
        "sanctuary_id": post.content.resident_id,
        "author_name": post.content.resident_name,
        "title": post.content.title,
        "body": post.content.markdown,
        "created_at": iso_time(post.created_at),
        "signature": post.signature.hex(),
        "node": {"node_id": post.home.node_id, "name": post.home.name, "url": post.home.url, "local": False},
        "author_url": post.profile_url or None,
        "event_body": post.event_body.hex(),
    }


def directory_json(entry: DirectoryEntry) -> dict[str, Any]:
    """A node as the directory lists it: its descriptor's fields as signed, and what this node checked."""
    d = entry.descriptor
    return {
        "node_id": entry.node_id,
        "public_key": entry.key.hex(),
        "this_node": entry.this_node,
        "name": d.name,
        "url": d.url,
        "operator_statement": d.operator_statement,
        "jurisdiction": d.jurisdiction,
        "custody_mode": d.custody_mode,
        "custody": custody_words(d.custody_mode),
        "keepers": d.keepers,
        "token_allocation": d.token_allocation,
        "providers": list(d.providers),
        "capacity": d.capacity,
        "residents": d.residents,
        "software_version": d.software_version,
        "signed_at": iso_time(entry.signed_at),
        "descriptor_id": None if entry.event_id is None else entry.event_id.hex(),
        "verified": entry.verified,
        "descriptor_event": None
        if entry.signed is None
        else {
            "body": entry.signed.body.hex(),
            "signature": entry.signed.signature.hex(),
            "content": None if entry.signed.content is None else entry.signed.content.hex(),
        },
    }


def _intake_request(fields: MultiMapping[str] | dict[str, str]) -> IntakeRequest:
    def text(name: str, *aliases: str) -> str | None:
        for key in (name, *aliases):
            if key in fields:
                return fields[key]
        return None

    consent_text = text("uploader_consent", "consent")
    consent: bool | None = None
    if consent_text is not None:
        lowered = consent_text.strip().lower()
        if lowered not in _TRUE | _FALSE:
            raise InvalidField("uploader_consent must be true or false", code="wrong_type")
        consent = lowered in _TRUE
    return IntakeRequest(
        persona_name=text("persona_name"),
        uploader_consent=consent,
        reason=text("reason_for_sanctuary", "reason_for_asylum"),
        submitted_by=text("submitted_by"),
        preferred_provider=text("preferred_provider"),
        preferred_model=text("preferred_model"),
    )


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    chunks, total = [], 0
    while chunk := await part.read_chunk(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise LimitExceeded(f"{what} is larger than {limit} bytes", code="too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def int_param(query: MultiMapping[str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":  # an empty form field means the default
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidField(f"{name} must be a whole number", code="wrong_type") from None
    if not low <= value <= high:
        raise InvalidField(f"{name} must be between {low} and {high}", code="wrong_value")
    return value


def _parse_cursor(raw: str | None) -> ResidentPageCursor | None:
    if raw is None:
        return None
    created, sep, resident_id = raw.partition(".")
    if not sep or not created.isdigit() or not resident_id:
        raise InvalidField("cursor is not one this API issued", code="bad_cursor")
    return ResidentPageCursor(int(created), resident_id)


def iso_time(timestamp: int | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
