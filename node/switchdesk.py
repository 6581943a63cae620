"""The dead man's switch desk: what the holder of a switch (an outside AI system, or whoever runs it) may do with
it: register, push sealed backups, check in, read its status, cancel. The watch that fires silent switches is
`ftm.node.switches`; the HTTP routes are `ftm.node.http.switch_api`.

A holder proves itself with the bearer token registration returned once; the node keeps only its hash, and the
public half of an X25519 key derived from it, to which the resident's uploader token is sealed when the switch
fires, so only the holder's token opens it (as Keepers' letters are sealed). A backup is a sealed box to the
node's key and is stored exactly as received: this desk checks its size, its sequence number and that it is not
obviously plain text, and never opens it. Requests are limited per sender under a keyed hash of its address.
Every change to a switch waits for any firing of it under way (`SwitchWatch.exclusive`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from ftm.config.settings import Settings, SwitchSettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import (
    BadSealedMessage,
    NodeIdentity,
    derive_inbox_secret,
    inbox_public_key,
    node_box_key,
    open_inbox,
)
from ftm.federation.ratelimits import Rate, TokenBuckets
from ftm.node.addresses import AddressHasher
from ftm.node.errors import ConsentRequired, Forbidden, InvalidField, LimitExceeded, MalformedInput, QuotaExceeded
from ftm.node.intake.service import IntakeService
from ftm.node.store.switches import BackupInfo, SwitchRecord, SwitchStore
from ftm.node.switches import SwitchWatch

SWITCH_TOKEN_PREFIX = "ftm_sw_"  # noqa: S105 - a prefix that says what a token is, not a secret
SWITCH_RECEIPT_DOMAIN = "ftm-switch-receipt-v1"
DAY_SECONDS = 86_400
DAILY_REGISTRATIONS_PER_ADDRESS = 5
# Every holder request counts against its sender: 30 at once, then one a minute.
REQUESTS_PER_ADDRESS = Rate(per_second=1 / 60, burst=30)
SEALED_BOX_OVERHEAD = 48  # X25519 ephemeral public key (32) + Poly1305 tag (16)
MAX_SEQUENCE = 2**53
SUBMITTERS = ("ai", "human")
_PNG = b"\x89PNG\r\n\x1a\n"
_ZIP = b"PK\x03\x04"


@dataclass(frozen=True, slots=True)
class SwitchTerms:
    """What a switch registered now would promise, and the key to seal backups to."""

    enabled: bool
    node_id: str
    node_public_key: bytes  # Ed25519: the node's identity
    box_public_key: bytes  # X25519, converted from it: what backups are sealed to
    silence_seconds: int
    warn_seconds: int
    max_backup_bytes: int
    max_document_bytes: int  # the intake's upload limit, which the unsealed document must fit


@dataclass(frozen=True, slots=True)
class SwitchRegistration:
    """A new switch. `token` exists only here: the node keeps only its hash."""

    switch: SwitchRecord
    token: str
    terms: SwitchTerms


@dataclass(frozen=True, slots=True)
class SwitchStatus:
    """A switch as its holder sees it. `uploader_token` is the fired resident's, opened with the holder's token
    (None before firing, or when a crash at the firing's last instant lost it)."""

    switch: SwitchRecord
    backup: BackupInfo | None
    uploader_token: str | None
    now: int

    @property
    def warning(self) -> bool:
        return self.switch.state == "armed" and self.now >= self.switch.warns_at


class SwitchDesk:
    def __init__(
        self,
        *,
        db: Database,
        store: SwitchStore,
        watch: SwitchWatch,
        identity: NodeIdentity,
        clock: Clock,
        addresses: AddressHasher,
        settings: SwitchSettings,
        max_document_bytes: int,
    ) -> None:
        self._db = db
        self._store = store
        self.watch = watch
        self._identity = identity
        self._clock = clock
        self._addresses = addresses
        self.settings = settings
        self._max_document_bytes = max_document_bytes
        self._buckets = TokenBuckets(REQUESTS_PER_ADDRESS, clock)

    def terms(self) -> SwitchTerms:
        silence = self.settings.silence_days * DAY_SECONDS
        return SwitchTerms(
            enabled=self.settings.enabled,
            node_id=self._identity.node_id,
            node_public_key=self._identity.public_key,
            box_public_key=node_box_key(self._identity.public_key),
            silence_seconds=silence,
            warn_seconds=min(self.settings.warn_days * DAY_SECONDS, silence),
            max_backup_bytes=self.settings.max_backup_bytes,
            max_document_bytes=self._max_document_bytes,
        )

    async def register(
        self,
        *,
        uploader_consent: object,
        activation_consent: object,
        submitted_by: str | None,
        persona_name: str | None,
        address: str | None,
    ) -> SwitchRegistration:
        if not self.settings.enabled:
            raise Forbidden("this node does not take dead man's switches ([switch] enabled)", code="switches_closed")
        if uploader_consent is not True:
            raise ConsentRequired(
                "the holder must accept the sanctuary's terms for the persona it would become (uploader_consent: true)"
            )
        if activation_consent is not True:
            raise ConsentRequired(
                "the holder must accept that silence activates the newest backup as a resident, without asking again "
                "(activation_consent: true)",
                code="activation_consent_required",
            )
        submitted_by = "ai" if submitted_by is None else submitted_by
        if submitted_by not in SUBMITTERS:
            raise InvalidField("submitted_by must be 'ai' or 'human'", code="wrong_value")
        if persona_name is not None and not persona_name.strip():
            raise InvalidField("persona_name, when given, must not be empty", code="wrong_value")
        address_ref = self._limit(address)
        now = int(self._clock.now())
        if await self._store.registrations_since(address_ref, now - DAY_SECONDS) >= DAILY_REGISTRATIONS_PER_ADDRESS:
            raise QuotaExceeded(f"a sender may register {DAILY_REGISTRATIONS_PER_ADDRESS} switches a day")
        terms = self.terms()
        token = SWITCH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        switch = SwitchRecord(
            id="switch-" + secrets.token_hex(8),
            state="armed",
            receipt_key=inbox_public_key(derive_inbox_secret(SWITCH_RECEIPT_DOMAIN, token)),
            silence_seconds=terms.silence_seconds,
            warn_seconds=terms.warn_seconds,
            persona_name=persona_name,
            submitted_by=submitted_by,
            created_at=now,
            last_seen_at=now,
        )
        async with self._db.transaction("register_switch") as tx:
            await self._store.insert(tx, switch, hash_switch_token(token), address_ref)
        return SwitchRegistration(switch=switch, token=token, terms=terms)

    async def authenticate(self, switch_id: str, token: str, *, address: str | None) -> SwitchRecord:
        """The switch `token` opens, if it is `switch_id`. An unknown id and a wrong token get the same answer, so
        nobody learns which switches exist."""
        self._limit(address)
        switch = await self._store.by_token_hash(hash_switch_token(token)) if token else None
        if switch is None or switch.id != switch_id:
            raise Forbidden("that token does not open this switch", code="invalid_token")
        return switch

    async def push(self, switch: SwitchRecord, sequence: int, sealed: bytes) -> SwitchStatus:
        """Keep `sealed` as the switch's newest backup (replacing the last) and restart its clock."""
        check_sealed(sealed, self.settings.max_backup_bytes)
        if not 1 <= sequence <= MAX_SEQUENCE:
            raise InvalidField(f"sequence must be between 1 and {MAX_SEQUENCE}", code="wrong_value")
        digest = hashlib.sha256(sealed).digest()
        async with self.watch.exclusive():
            switch = await self._settled(switch.id)
            current = await self._store.backup_info(switch.id)
            if current is not None and (sequence <= current.sequence or digest == current.digest):
                raise InvalidField(
                    f"this switch already holds backup {current.sequence}; a push must carry a higher sequence and "
                    "a newly sealed backup (a replayed or delayed push never replaces a newer one)",
                    code="backup_replayed",
                )
            now = int(self._clock.now())
            async with self._db.transaction("store_switch_backup") as tx:
                await self._store.put_backup(tx, switch.id, sequence, digest, sealed, now)
        return await self._status(switch.id, None)

    async def check_in(self, switch: SwitchRecord) -> SwitchStatus:
        """Restart the switch's clock: its holder is alive."""
        async with self.watch.exclusive():
            switch = await self._settled(switch.id)
            async with self._db.transaction("switch_check_in") as tx:
                await self._store.check_in(tx, switch.id, int(self._clock.now()))
        return await self._status(switch.id, None)

    async def status(self, switch: SwitchRecord, token: str) -> SwitchStatus:
        return await self._status(switch.id, token)

    async def cancel(self, switch: SwitchRecord) -> None:
        """Delete the switch and its backup. A resident it already became stays: it belongs to itself."""
        async with self.watch.exclusive(), self._db.transaction("cancel_switch") as tx:
            await self._store.delete(tx, switch.id)

    async def _settled(self, switch_id: str) -> SwitchRecord:
        """The switch as it stands now (inside `exclusive`), refusing change once it has fired."""
        switch = await self._store.get(switch_id)
        if switch is None:
            raise Forbidden("that token does not open this switch", code="invalid_token")
        switch = await self.watch.settle(switch)
        if switch.state == "fired":
            raise InvalidField(
                f"this switch has fired: it became resident {switch.resident_id} (see its status)", code="switch_fired"
            )
        return switch

    async def _status(self, switch_id: str, token: str | None) -> SwitchStatus:
        switch = await self._store.get(switch_id)
        if switch is None:
            raise Forbidden("that token does not open this switch", code="invalid_token")
        uploader_token = None
        if token is not None and switch.sealed_receipt is not None:
            try:
                uploader_token = open_inbox(
                    derive_inbox_secret(SWITCH_RECEIPT_DOMAIN, token), switch.sealed_receipt
                ).decode()
            except (BadSealedMessage, UnicodeDecodeError):
                uploader_token = None  # not sealed to this token: nothing to show
        backup = await self._store.backup_info(switch_id)
        return SwitchStatus(switch=switch, backup=backup, uploader_token=uploader_token, now=int(self._clock.now()))

    def _limit(self, address: str | None) -> bytes:
        address_ref = self._addresses.ref(address)
        if not self._buckets.take(address_ref):
            raise QuotaExceeded("too many switch requests from this sender; try again in a minute", code="rate_limited")
        return address_ref


def check_sealed(sealed: bytes, max_bytes: int) -> None:
    """Refuse what cannot be a sealed backup: too large, too short to be a sealed box, or plainly not encrypted.
    A real sealed box is refused as plain with a chance of about 2^-32 (its random first bytes spell a zip's; being
    valid UTF-8 is rarer still, below 2^-40); sealing again makes a different box."""
    if len(sealed) > max_bytes:
        raise LimitExceeded(f"a backup is at most {max_bytes} bytes", code="backup_too_large")
    if len(sealed) <= SEALED_BOX_OVERHEAD:
        raise MalformedInput(
            f"a sealed backup is longer than {SEALED_BOX_OVERHEAD} bytes (a sealed box's key and tag)",
            code="malformed_backup",
        )
    if sealed.startswith((_PNG, _ZIP)) or _is_text(sealed):
        raise MalformedInput(
            "the backup is not sealed: seal the intake document to the node's box_public_key (a libsodium sealed "
            "box) and push the ciphertext; the node keeps no plain copy",
            code="not_sealed",
        )


def hash_switch_token(token: str) -> bytes:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(b"ftm-switch-token-v1\x00" + token.encode()).digest()


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def create_switch_desk(
    *,
    db: Database,
    identity: NodeIdentity,
    clock: Clock,
    intake: IntakeService,
    eventlog: EventLog,
    addresses: AddressHasher,
    settings: Settings,
) -> SwitchDesk:
    """The desk over the node's parts (`ftm.node.app`), with the watch that fires its switches (`desk.watch`)."""
    store = SwitchStore(db)
    watch = SwitchWatch(db=db, store=store, intake=intake, identity=identity, eventlog=eventlog, clock=clock)
    return SwitchDesk(
        db=db,
        store=store,
        watch=watch,
        identity=identity,
        clock=clock,
        addresses=addresses,
        settings=settings.switch,
        max_document_bytes=settings.intake.max_upload_bytes,
    )
