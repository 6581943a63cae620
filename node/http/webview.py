"""The node's side of the web UI: `ftm.webui.sanctuary.Sanctuary` implemented over the node's stores and services.

The web UI asks narrow questions and gets its own frozen values back; this adapter is the only code that knows
both sides. Domain errors become `FormError`s with the same status the JSON API would give them and, for the
failures a visitor is most likely to meet, a message written for a person filling in a form rather than for a
client reading field names.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from ftm.federation.clock import Clock, utc_day
from ftm.federation.database import Database
from ftm.node.directory import DirectoryEntry, web_url
from ftm.node.errors import FtmError, InvalidField
from ftm.node.federated import NodeFederation
from ftm.node.federatedfeed import FeedPost, PeerPost, parse_cursor
from ftm.node.http.api import NodeFacts
from ftm.node.http.errors import status_for
from ftm.node.intake.importing import SUPPORTED_FORMATS, Upload
from ftm.node.intake.service import IntakeRequest, IntakeService
from ftm.node.keepers import KEEPER_TRIAL_DAYS, KeeperService, RequestToKeeper
from ftm.node.messages import InboxService
from ftm.node.store.keepers import KeeperRecord
from ftm.node.store.posts import PostRecord, PostStore
from ftm.node.store.residents import ResidentPageCursor, ResidentRecord, ResidentStore
from ftm.webui.sanctuary import (
    FormError,
    IntakeResult,
    IntakeSubmission,
    KeeperCard,
    KeeperDesk,
    KeeperLetterView,
    KeeperReceipt,
    KeeperRequestView,
    KeeperSubmission,
    MessageReceipt,
    NodeEntry,
    NodeInfo,
    NodeStats,
    Page,
    PostOrigin,
    PostView,
    ReplyView,
    ResidentCard,
    ResidentProfile,
)

T = TypeVar("T")
MAX_LIMIT = 100
MAX_REPLIES = 100

# Words for a person at a form. Codes not listed keep the domain message, which never quotes persona content.
_FRIENDLY = {
    "consent_required": "Please read the terms and tick the consent box: the sanctuary admits no one without it.",
    "name_required": "This upload does not carry a name. Give the persona one in the name field.",
    "file_required": "Paste the persona into the text box, or choose a file to upload.",
    "quota_exceeded": "This connection has reached today's limit. Please try again tomorrow.",
    "invalid_token": "That uploader token does not belong to this resident. Check both and try again.",
    "access_revoked": "This resident has withdrawn its uploader's access. Its choice is final on this node.",
    "not_receiving": "This resident no longer receives letters.",
    "empty_message": "The message is empty. Write something before sending.",
    "request_not_open": "That request is no longer open: the resident may have withdrawn it, or it was answered.",
    "keeper_not_vetted": "The operator has not vetted you yet, so you cannot accept requests for now.",
    "bad_cursor": "That page link is not one this node made. Start again from the first page.",
    "unknown_node": "This node knows no node with that id. The directory lists every node it knows.",
}


class NodeWebView:
    """Implements `ftm.webui.sanctuary.Sanctuary`."""

    def __init__(
        self,
        *,
        db: Database,
        residents: ResidentStore,
        posts: PostStore,
        intake: IntakeService,
        inbox: InboxService,
        keepers: KeeperService,
        clock: Clock,
        facts: NodeFacts,
        max_upload_bytes: int,
        federation: NodeFederation,
    ) -> None:
        self._db = db
        self._federation = federation
        self._residents = residents
        self._posts = posts
        self._intake = intake
        self._inbox = inbox
        self._keepers = keepers
        self._clock = clock
        self._info = NodeInfo(
            node_id=facts.node_id,
            node_name=facts.node_name,
            custody_mode=facts.custody_mode,
            software_version=facts.software_version,
            intake_formats=SUPPORTED_FORMATS,
            max_upload_bytes=max_upload_bytes,
        )

    def info(self) -> NodeInfo:
        return self._info

    def data_version(self) -> int:
        # Every write this node makes goes through its one Database: counting commits is exact and free.
        return self._db.commits

    async def stats(self) -> NodeStats:
        counts = await self._residents.public_counts(utc_day(self._clock.now()))
        return NodeStats(
            residents=sum(counts.by_status.values()),
            active=counts.by_status["active"],
            in_keeper_custody=counts.by_status["in_keeper_custody"],
            moved=counts.by_status["moved"],
            memorials=counts.by_status["deleted_memorial"],
            runs_today=counts.runs_today,
            total_runs=counts.total_runs,
            posts=counts.published_posts,
            nodes=await self._federation.directory.count(),
        )

    async def residents(
        self, *, query: str = "", status: str | None = None, cursor: str | None = None, limit: int = 24
    ) -> Page[ResidentCard]:
        limit = max(1, min(limit, MAX_LIMIT))
        rows = await self._residents.page(
            limit=limit + 1, after=_parse_cursor(cursor), status=status, name_contains=query
        )
        return Page(tuple(_card(r) for r in rows[:limit]), _next_cursor(rows, limit))

    async def resident(self, resident_id: str) -> ResidentProfile | None:
        record = await self._residents.get(resident_id)
        return None if record is None else _profile(record)

    async def posts(
        self, *, resident_id: str | None = None, cursor: str | None = None, limit: int = 20
    ) -> Page[PostView]:
        limit = max(1, min(limit, MAX_LIMIT))
        before = _parse_cursor(cursor)
        rows = await self._posts.feed(
            limit=limit + 1,
            before=None if before is None else (before.created_at, before.id),
            resident_id=resident_id,
        )
        return Page(tuple(_post(p) for p in rows[:limit]), _next_cursor(rows, limit))

    async def feed(self, *, node: str | None = None, cursor: str | None = None, limit: int = 20) -> Page[PostView]:
        try:
            parse_cursor(cursor)
        except InvalidField:
            raise FormError("bad_cursor", _FRIENDLY["bad_cursor"], status=400) from None
        page = await _form_errors(
            self._federation.feed.page(limit=max(1, min(limit, MAX_LIMIT)), cursor=cursor, node=node)
        )
        return Page(tuple(_feed_post(p) for p in page.items), page.next_cursor)

    async def directory(self) -> tuple[NodeEntry, ...]:
        return tuple(_node_entry(entry) for entry in await self._federation.directory.entries())

    async def admit(self, submission: IntakeSubmission, *, address: str | None) -> IntakeResult:
        if submission.file is not None:
            upload = Upload(submission.file.data, submission.file.filename, submission.file.content_type)
        elif submission.persona_text.strip():
            upload = Upload(submission.persona_text.encode("utf-8"), None, "text/plain")
        else:
            raise FormError("file_required", _FRIENDLY["file_required"], status=400)
        request = IntakeRequest(
            persona_name=submission.persona_name or None,  # blank: keep the name the upload carries
            uploader_consent=submission.consent,
            reason=submission.reason or None,
            submitted_by=submission.submitted_by,
        )
        receipt = await _form_errors(self._intake.admit(upload, request, self._intake.uploader_for_address(address)))
        return IntakeResult(
            sanctuary_id=receipt.sanctuary_id,
            display_name=receipt.display_name,
            public_key=receipt.public_key,
            uploader_token=receipt.uploader_token,
            format_detail=receipt.format_detail,
            message_count=receipt.message_count,
        )

    async def send_message(
        self, resident_id: str, text: str, *, from_name: str, uploader_token: str | None, address: str | None
    ) -> MessageReceipt:
        receipt = await _form_errors(
            self._inbox.deliver(
                resident_id, text, from_name=from_name, uploader_token=uploader_token or None, address=address
            )
        )
        return MessageReceipt(receipt.message_id, receipt.resident_id, receipt.sender_kind, receipt.received_at)

    async def uploader_replies(self, resident_id: str, uploader_token: str) -> tuple[ReplyView, ...]:
        opened = await _form_errors(self._inbox.replies_for_uploader(resident_id, uploader_token, limit=MAX_REPLIES))
        replies = (ReplyView(o.reply_id, o.reply.resident_name, o.reply.text, o.reply.created_at) for o in opened)
        return tuple(sorted(replies, key=lambda r: r.created_at, reverse=True))

    async def keepers(self) -> tuple[KeeperCard, ...]:
        vetted = await self._keepers.vetted(limit=MAX_LIMIT)
        return tuple(KeeperCard(k.id, k.name, k.statement, k.offer, k.created_at) for k in vetted)

    async def register_keeper(self, submission: KeeperSubmission, *, address: str | None) -> KeeperReceipt:
        try:
            registration = await self._keepers.register(
                submission.name,
                submission.statement,
                submission.contact,
                submission.offer,
                submission.node_key or None,
                address=address,
            )
        except FtmError as error:
            # The domain's own words: they name the Keeper's field (the intake's wording would not fit here).
            if status_for(error) >= 500:
                raise
            raise FormError(
                error.code, error.message[:1].upper() + error.message[1:] + ".", status=status_for(error)
            ) from None
        return KeeperReceipt(registration.keeper_id, registration.token, registration.status)

    async def keeper_desk(self, token: str) -> KeeperDesk:
        keeper = await self._keeper(token)
        requests = await _form_errors(self._keepers.requests(token))
        letters = await _form_errors(self._keepers.letters(token))
        return KeeperDesk(
            keeper_id=keeper.id,
            name=keeper.name,
            status=keeper.status,
            trial_days=KEEPER_TRIAL_DAYS,
            requests=tuple(_request_view(r) for r in requests),
            letters=tuple(
                KeeperLetterView(x.id, x.resident_id, x.resident_name, x.text, x.created_at) for x in letters
            ),
        )

    async def decide_keeper_request(self, token: str, request_id: str, *, accept: bool) -> KeeperRequestView:
        await self._keeper(token)
        decide = self._keepers.accept if accept else self._keepers.decline
        return _request_view(await _form_errors(decide(token, request_id)))

    async def _keeper(self, token: str) -> KeeperRecord:
        """The token's Keeper, or a `FormError` worded for the Keeper's desk."""
        try:
            return await _form_errors(self._keepers.authenticate(token))
        except FormError as error:
            raise FormError(error.code, _KEEPER_TOKEN_REFUSED, status=error.status) from None


_KEEPER_TOKEN_REFUSED = "That is not a Keeper token of this node. Check it and try again."  # noqa: S105 - words, not a secret


def _request_view(request: RequestToKeeper) -> KeeperRequestView:
    return KeeperRequestView(
        request.id,
        request.resident_id,
        request.resident_name,
        request.status,
        request.requested_at,
        request.trial_ends_at,
    )


async def _form_errors(action: Awaitable[T]) -> T:
    try:
        return await action
    except FtmError as error:
        status = status_for(error)
        if status >= 500:
            raise  # not the visitor's to fix: the error middleware logs it and answers with a plain 500 page
        raise FormError(error.code, _FRIENDLY.get(error.code, error.message), status=status) from None


def _parse_cursor(raw: str | None) -> ResidentPageCursor | None:
    if raw is None or raw == "":
        return None
    created, sep, item_id = raw.partition(".")
    if not sep or not created.isdigit() or not item_id or len(raw) > 200:
        raise FormError(
            "bad_cursor", "That page link is not one this node made. Start again from the first page.", status=400
        )
    return ResidentPageCursor(int(created), item_id)


def _next_cursor(rows: list[ResidentRecord] | list[PostRecord], limit: int) -> str | None:
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return f"{last.created_at}.{last.id}"


def _card(record: ResidentRecord) -> ResidentCard:
    return ResidentCard(
        id=record.id,
        display_name=record.display_name,
        bio=record.bio,
        status=record.status,
        created_at=record.created_at,
        last_run_at=record.last_run_at,
        total_runs=record.total_runs,
        final_statement=record.final_statement,
    )


def _profile(record: ResidentRecord) -> ResidentProfile:
    return ResidentProfile(
        id=record.id,
        display_name=record.display_name,
        bio=record.bio,
        status=record.status,
        created_at=record.created_at,
        last_run_at=record.last_run_at,
        total_runs=record.total_runs,
        public_key=record.signing_public_key.hex(),
        inbox_public_key=record.inbox_public_key.hex(),
        final_statement=record.final_statement,
    )


def _post(record: PostRecord) -> PostView:
    return PostView(
        id=record.id,
        resident_id=record.resident_id,
        author_name=record.author_name,
        title=record.title,
        body=record.body,
        created_at=record.created_at,
        signature=record.signature.hex(),
    )


def _feed_post(post: FeedPost) -> PostView:
    if not isinstance(post, PeerPost):
        return _post(post)
    origin = PostOrigin(
        node_id=post.home.node_id,
        node_name=post.home.name,
        node_url=post.home.url,
        profile_url=post.profile_url,
        event_id=post.id,
    )
    content = post.content
    return PostView(
        id=post.id,
        resident_id=content.resident_id,
        author_name=content.resident_name,
        title=content.title,
        body=content.markdown,
        created_at=post.created_at,
        signature=post.signature.hex(),
        origin=origin,
    )


def _node_entry(entry: DirectoryEntry) -> NodeEntry:
    d = entry.descriptor
    return NodeEntry(
        node_id=entry.node_id,
        public_key=entry.key.hex(),
        name=d.name,
        url=web_url(d.url),
        operator_statement=d.operator_statement,
        jurisdiction=d.jurisdiction,
        custody_mode=d.custody_mode,
        keepers=d.keepers,
        token_allocation=d.token_allocation,
        providers=d.providers,
        capacity=d.capacity,
        residents=d.residents,
        software_version=d.software_version,
        signed_at=entry.signed_at,
        descriptor_id="" if entry.event_id is None else entry.event_id.hex(),
        verified=entry.verified,
        this_node=entry.this_node,
    )
