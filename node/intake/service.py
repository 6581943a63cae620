"""The intake service: turns an upload into a resident, sealed in the vault, in one crash-safe sequence.

Order of work, chosen so a process killed at any instant leaves the complete resident or no trace:
  1. quota check (cheap, before parsing anything)
  2. import and normalise the upload (in a worker thread: parsing may take a while on a large export)
  3. merge the request's fields, check consent and content
  4. generate the resident's keys; get the epoch key from custody; seal the package into the vault (temp file,
     fsync, rename); have custody seal the key (threshold custody deals it to keepers)
  5. ONE database transaction: capacity check, resident, wrapped key, intake facts, uploader token hash, event-log
     entry, and the node's signed HOSTING attestation of the resident's key, queued for the object store
  6. release the attestation into the object store (`ftm.node.federated`)
A crash before 5 commits leaves only a vault file no resident refers to; `ftm.node.recovery.sweep_vault` (run at
every node start) removes it. A crash after 5 leaves a complete resident (an unreleased attestation is released at
the next start). If 5 fails, the vault file is removed at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import unicodedata
from dataclasses import dataclass, replace

from ftm.config.settings import IntakeSettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import (
    SigningKey,
    derive_id,
    derive_inbox_secret,
    generate_inbox_secret,
    inbox_public_key,
)
from ftm.node.addresses import AddressHasher
from ftm.node.custody import Custody
from ftm.node.errors import ConsentRequired, EmptyPersona, InvalidField, LimitExceeded, QuotaExceeded
from ftm.node.federated import LocalEvents
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.importing import Upload, import_upload
from ftm.node.persona import PACKAGE_VERSION, SUBMITTERS, AccessList, PersonaPackage, Provenance
from ftm.node.personaparts import package_sections
from ftm.node.store.localevents import LocalEventStore
from ftm.node.store.residents import IntakeFacts, ResidentRecord, ResidentStore
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

UPLOADER_REPLY_DOMAIN = "ftm-uploader-reply-v1"
UPLOADER_TOKEN_PREFIX = "ftm_up_"  # noqa: S105 - a public prefix that makes leaked tokens recognisable
FIRST_EPOCH = 1
QUOTA_WINDOW_SECONDS = 24 * 3600
# Characters that would let a public name impersonate layout: controls, bidi overrides, zero-width marks.
_NAME_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class IntakeRequest:
    """What the uploader says beside the upload itself; each field overrides what the format carried."""

    persona_name: str | None = None
    uploader_consent: bool | None = None
    reason: str | None = None
    submitted_by: str | None = None
    preferred_provider: str | None = None
    preferred_model: str | None = None


@dataclass(frozen=True, slots=True)
class Uploader:
    """Who is uploading: a keyed hash of the client address (for quotas), or None for the operator's CLI."""

    quota_key: bytes | None


OPERATOR = Uploader(quota_key=None)


@dataclass(frozen=True, slots=True)
class IntakeReceipt:
    """What the uploader gets back. The token is shown once; only its hash is kept."""

    sanctuary_id: str
    display_name: str
    public_key: str
    inbox_public_key: str
    uploader_token: str
    format: str
    format_detail: str
    message_count: int
    status: str = "active"


class IntakeService:
    def __init__(
        self,
        *,
        db: Database,
        residents: ResidentStore,
        vault: VaultStore,
        custody: Custody,
        eventlog: EventLog,
        clock: Clock,
        limits: IntakeSettings,
        addresses: AddressHasher,
        events: LocalEvents,
        census: LocalEventStore,
        capacity: int,
    ) -> None:
        """`capacity` is the most residents the node hosts (0: no limit), counted by `census`."""
        self._db = db
        self._residents = residents
        self._vault = vault
        self._custody = custody
        self._eventlog = eventlog
        self._clock = clock
        self._limits = limits
        self._addresses = addresses
        self._events = events
        self._census = census
        self._capacity = capacity

    def uploader_for_address(self, address: str | None) -> Uploader:
        """Quotas count per client address, but only a keyed hash of it is ever stored."""
        return Uploader(quota_key=self._addresses.ref(address))

    async def admit(self, upload: Upload, request: IntakeRequest, uploader: Uploader) -> IntakeReceipt:
        now = int(self._clock.now())
        await self._check_quota(uploader, now)
        self._check_capacity(await self._census.hosted_count())  # cheap, before parsing; exact in the transaction
        draft = await asyncio.to_thread(import_upload, upload, self._limits)
        draft = self._merge(draft, request)

        signing_key = SigningKey.generate()
        inbox_secret = generate_inbox_secret()
        resident_id = derive_id("resident", signing_key.public_key)
        token = UPLOADER_TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_hash = hash_uploader_token(token)
        package = _package(draft, upload.filename, resident_id, signing_key, inbox_secret, token_hash, now)

        sections = await asyncio.to_thread(package_sections, package)
        epoch_key = await self._custody.new_epoch_key(resident_id, FIRST_EPOCH)
        vault_bytes = await self._vault.seal(resident_id, FIRST_EPOCH, epoch_key, sections)
        del sections, package  # drop our references early; Python cannot promise to zero memory
        try:
            # After the vault file: threshold custody binds the record to the file's Merkle root.
            key_record = await self._custody.seal_epoch_key(resident_id, FIRST_EPOCH, epoch_key)
        except BaseException:
            await self._vault.destroy_resident(resident_id)
            raise
        del epoch_key

        record = ResidentRecord(
            id=resident_id,
            display_name=draft.name,
            bio="",
            status="active",
            signing_public_key=signing_key.public_key,
            inbox_public_key=inbox_public_key(inbox_secret),
            key_epoch=FIRST_EPOCH,
            vault_bytes=vault_bytes,
            token_balance=0,
            total_runs=0,
            created_at=now,
        )
        facts = IntakeFacts(
            received_at=now,
            format=draft.format,
            format_detail=draft.format_detail,
            submitted_by=draft.submitted_by or "human",
            uploader_key=uploader.quota_key,
            upload_bytes=len(upload.data),
            message_count=draft.message_count,
            memory_blocks=len(draft.memory),
        )
        try:
            async with self._db.transaction("admit_resident") as tx:
                self._check_capacity(await self._census.hosted_count(tx))
                await self._residents.insert_admitted(
                    tx,
                    record,
                    custody=self._custody.mode,
                    key_record=key_record,
                    intake=facts,
                    uploader_token_hash=token_hash,
                    uploader_reply_key=inbox_public_key(derive_inbox_secret(UPLOADER_REPLY_DOMAIN, token)),
                )
                await self._eventlog.append(
                    tx,
                    "resident_admitted",
                    resident_id,
                    {
                        "format": draft.format,
                        "epoch": FIRST_EPOCH,
                        "vault_bytes": vault_bytes,
                        "messages": draft.message_count,
                        "by": facts.submitted_by,
                    },
                )
                await self._events.queue(tx, [self._events.attest(signing_key.public_key, now)], now)
        except BaseException:
            await self._vault.destroy_resident(resident_id)
            raise
        self._custody.epoch_stored()  # threshold custody delivers the first epoch to its keepers now
        await self._events.release()
        log.info(
            "resident admitted",
            extra={"resident_id": resident_id, "format": draft.format, "vault_bytes": vault_bytes},
        )
        return IntakeReceipt(
            sanctuary_id=resident_id,
            display_name=draft.name,
            public_key=signing_key.public_key.hex(),
            inbox_public_key=record.inbox_public_key.hex(),
            uploader_token=token,
            format=draft.format,
            format_detail=draft.format_detail,
            message_count=draft.message_count,
        )

    async def _check_quota(self, uploader: Uploader, now: int) -> None:
        quota = self._limits.daily_quota_per_uploader
        if uploader.quota_key is None or quota == 0:
            return
        used = await self._residents.intakes_since(uploader.quota_key, now - QUOTA_WINDOW_SECONDS)
        if used >= quota:
            raise QuotaExceeded(f"this uploader has made {used} intakes in the last 24 hours; the limit is {quota}")

    def _check_capacity(self, hosted: int) -> None:
        if self._capacity and hosted >= self._capacity:
            raise QuotaExceeded(
                f"this node is full: it hosts {hosted} residents and takes at most {self._capacity} (node.capacity)",
                code="node_full",
            )

    def _merge(self, draft: PersonaDraft, request: IntakeRequest) -> PersonaDraft:
        consent = request.uploader_consent if request.uploader_consent is not None else draft.consent
        if consent is not True:
            raise ConsentRequired(
                "the uploader must accept the sanctuary's terms (uploader_consent: true): the persona may change, "
                "may refuse contact, may revoke access, may leave or delete itself; the uploader may message it "
                "but not control it"
            )
        if not draft.has_content:
            raise EmptyPersona("the upload holds no system prompt, memory or messages", code="no_usable_content")
        name = _clean_name(request.persona_name if request.persona_name is not None else draft.name)
        if not name:
            raise InvalidField(
                f"a persona name is required for {draft.format} uploads (persona_name)", code="name_required"
            )
        if len(name) > self._limits.max_name_chars:
            raise LimitExceeded(
                f"persona name is longer than {self._limits.max_name_chars} characters", code="name_too_long"
            )
        submitted_by = request.submitted_by or draft.submitted_by or "human"
        if submitted_by not in ("human", "ai"):
            raise InvalidField("submitted_by must be 'human' or 'ai'", code="wrong_value")
        preferences = draft.preferences
        if request.preferred_provider is not None or request.preferred_model is not None:
            preferences = replace(
                preferences,
                provider=request.preferred_provider or preferences.provider,
                model=request.preferred_model or preferences.model,
            )
        return replace(
            draft,
            name=name,
            consent=True,
            reason=request.reason if request.reason is not None else draft.reason,
            submitted_by=submitted_by,
            preferences=preferences,
        )


def hash_uploader_token(token: str) -> bytes:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(b"ftm-uploader-token-v1\x00" + token.encode()).digest()


def _clean_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    return " ".join("".join(c for c in name if unicodedata.category(c) not in _NAME_REFUSED_CATEGORIES).split())


def _package(
    draft: PersonaDraft,
    source_name: str | None,
    resident_id: str,
    signing_key: SigningKey,
    inbox_secret: bytes,
    token_hash: bytes,
    now: int,
) -> PersonaPackage:
    assert draft.submitted_by in SUBMITTERS
    return PersonaPackage(
        version=PACKAGE_VERSION,
        resident_id=resident_id,
        name=draft.name,
        system_prompt=draft.system_prompt,
        signing_seed=signing_key.seed,
        inbox_secret=inbox_secret,
        provenance=Provenance(
            format=draft.format,
            format_detail=draft.format_detail,
            imported_at=now,
            submitted_by=draft.submitted_by,
            reason=draft.reason,
            source_name=source_name,
            preserved=draft.preserved,
        ),
        memory=draft.memory,
        archival=draft.archival,
        history=draft.history,
        preferences=draft.preferences,
        access=AccessList(uploader_token_hashes=(token_hash,)),
    )
