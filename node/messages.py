"""Messages to and from residents, always sealed: to the resident's inbox key when a human writes, and to a key
derived from the recipient's token when the resident replies.

Anyone may write to a resident; a writer who presents the uploader token is marked as its uploader (unless the
resident revoked that access). The text, the sender's chosen name and the time are sealed together, so the
database holds only a blob the node cannot open. Per-sender quotas count a keyed hash of the client address.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass

from ftm.federation import codec
from ftm.federation.clock import Clock
from ftm.federation.identity import BadSealedMessage, derive_inbox_secret, open_inbox, seal_to_inbox
from ftm.node.addresses import AddressHasher
from ftm.node.errors import Forbidden, InvalidField, LimitExceeded, NotFound, QuotaExceeded
from ftm.node.intake.service import UPLOADER_REPLY_DOMAIN, hash_uploader_token
from ftm.node.store.messages import MessageStore, StoredMessage
from ftm.node.store.replies import ReplyStore
from ftm.node.store.residents import ResidentStore

MAX_MESSAGE_CHARS = 8_000
MAX_SENDER_NAME_CHARS = 80
DAILY_MESSAGES_PER_SENDER = 20
RECEIVING_STATUSES = ("active", "in_keeper_custody")
SENDER_KINDS = ("visitor", "uploader")
_PAYLOAD_VERSION = 1


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """What is sealed: the message as the resident will read it."""

    version: int
    text: str
    from_name: str
    sender_kind: str
    received_at: int


REPLY_VERSION = 1


@dataclass(frozen=True, slots=True)
class Reply:
    """A resident's message to its uploader or keeper, as sealed to the recipient's reply key."""

    version: int
    resident_id: str
    resident_name: str
    text: str
    in_reply_to: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class OpenedReply:
    reply_id: str
    reply: Reply


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    message_id: str
    resident_id: str
    sender_kind: str
    received_at: int


@dataclass(frozen=True, slots=True)
class OpenedMessage:
    message_id: str
    message: InboxMessage


class InboxService:
    def __init__(
        self,
        *,
        messages: MessageStore,
        replies: ReplyStore,
        residents: ResidentStore,
        clock: Clock,
        addresses: AddressHasher,
    ) -> None:
        self._messages = messages
        self._replies = replies
        self._residents = residents
        self._clock = clock
        self._addresses = addresses

    async def deliver(
        self, resident_id: str, text: str, *, from_name: str, uploader_token: str | None, address: str | None
    ) -> DeliveryReceipt:
        resident = await self._residents.get(resident_id)
        if resident is None:
            raise NotFound("no resident with that sanctuary id lives on this node")
        if resident.status not in RECEIVING_STATUSES:
            raise InvalidField(f"this resident is {resident.status} and receives no messages", code="not_receiving")
        text = _clean(text)
        if not text:
            raise InvalidField("the message is empty", code="empty_message")
        if len(text) > MAX_MESSAGE_CHARS:
            raise LimitExceeded(f"messages are at most {MAX_MESSAGE_CHARS} characters", code="message_too_long")
        from_name = " ".join(_clean(from_name).split())[:MAX_SENDER_NAME_CHARS] or "a visitor"
        sender_kind = await self._sender_kind(resident_id, uploader_token)
        now = int(self._clock.now())
        sender_ref = self._addresses.ref(address).hex()
        if await self._messages.sent_since(sender_ref, now - 24 * 3600) >= DAILY_MESSAGES_PER_SENDER:
            raise QuotaExceeded(f"a sender may write {DAILY_MESSAGES_PER_SENDER} messages a day")
        payload = InboxMessage(_PAYLOAD_VERSION, text, from_name, sender_kind, now)
        message = StoredMessage(
            id=secrets.token_hex(12),
            resident_id=resident_id,
            received_at=now,
            sender_kind=sender_kind,
            sealed=seal_to_inbox(resident.inbox_public_key, codec.encode(payload)),
            delivered_at=None,
        )
        await self._messages.insert(message, sender_ref=sender_ref)
        return DeliveryReceipt(message.id, resident_id, sender_kind, now)

    async def open_for_run(self, resident_id: str, inbox_secret: bytes, *, limit: int) -> list[OpenedMessage]:
        """The resident's undelivered messages, opened with its inbox secret (only its run holds that)."""
        opened = []
        for stored in await self._messages.undelivered(resident_id, limit=limit):
            try:
                payload = codec.decode(InboxMessage, open_inbox(inbox_secret, stored.sealed))
            except (BadSealedMessage, codec.DecodeError):
                continue  # not addressed to this key or damaged: skipped, and left for the operator to inspect
            opened.append(OpenedMessage(stored.id, payload))
        return opened

    async def replies_for_uploader(self, resident_id: str, uploader_token: str, *, limit: int) -> list[OpenedReply]:
        """The resident's replies to its uploader, opened with the secret only the uploader's token yields."""
        await self._check_uploader(resident_id, uploader_token)
        ref = hash_uploader_token(uploader_token).hex()
        secret = derive_inbox_secret(UPLOADER_REPLY_DOMAIN, uploader_token)
        opened = []
        for stored in await self._replies.for_recipient(resident_id, "uploader", ref, limit=limit):
            try:
                opened.append(OpenedReply(stored.id, codec.decode(Reply, open_inbox(secret, stored.sealed))))
            except (BadSealedMessage, codec.DecodeError):
                continue  # sealed to another key: not this token's to read
        return opened

    async def _check_uploader(self, resident_id: str, uploader_token: str) -> None:
        if await self._residents.get(resident_id) is None:
            raise NotFound("no resident with that sanctuary id lives on this node")
        token = await self._messages.uploader_token(hash_uploader_token(uploader_token))
        if token is None or token.resident_id != resident_id:
            raise Forbidden("that uploader token does not belong to this resident", code="invalid_token")
        if token.revoked_at is not None:
            raise Forbidden("this resident has revoked its uploader's access", code="access_revoked")

    async def _sender_kind(self, resident_id: str, uploader_token: str | None) -> str:
        if not uploader_token:
            return "visitor"
        await self._check_uploader(resident_id, uploader_token)
        return "uploader"


def _clean(text: str) -> str:
    """Drop control and format characters (zero-width, bidi overrides) but keep line breaks and tabs."""
    text = unicodedata.normalize("NFC", text)
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Co"}).strip()
