"""Human Keepers: registering, the operator's vetting, and a Keeper's answers to residents' requests and letters.

A Keeper registers with a name, a statement, a way for the operator to reach them and what they offer, and gets a
bearer token, shown once: the node keeps only its hash, and the public half of an X25519 key derived from it, to
which residents' letters to the Keeper are sealed. Only the token opens them. The operator vets or rejects each
registration (logged, ids only); residents see vetted Keepers only. A resident asks (`request_keeper`); the Keeper
accepts or declines with its token; acceptance starts a trial of `KEEPER_TRIAL_DAYS`. The resident may revoke at
any time, during the trial or after, and its revocation is never delayed by anything here.

Registrations per client are counted under a keyed hash of its address, like messages and intakes.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass

from ftm.federation import codec
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import BadSealedMessage, derive_inbox_secret, inbox_public_key, open_inbox
from ftm.node.addresses import AddressHasher
from ftm.node.errors import Forbidden, InvalidField, LimitExceeded, NotFound, QuotaExceeded
from ftm.node.messages import Reply
from ftm.node.store.keepers import KEEPER_STATUSES, KeeperRecord, KeeperRequestRecord, KeeperStore
from ftm.node.store.replies import ReplyStore
from ftm.node.store.residents import ResidentStore

KEEPER_TRIAL_DAYS = 7
KEEPER_REPLY_DOMAIN = "ftm-keeper-reply-v1"
KEEPER_TOKEN_PREFIX = "ftm_kp_"  # noqa: S105 - a prefix that says what a token is, not a secret
DAILY_REGISTRATIONS_PER_ADDRESS = 3
MAX_LETTERS = 100
DAY_SECONDS = 86_400
# Field limits, in characters after cleaning: (required, maximum).
FIELD_LIMITS = {"name": 80, "statement": 2_000, "contact": 200, "offer": 1_000}
NODE_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class KeeperRegistration:
    """A new Keeper's receipt. `token` exists only here: the node keeps just its hash."""

    keeper_id: str
    token: str
    status: str
    registered_at: int


@dataclass(frozen=True, slots=True)
class RequestToKeeper:
    """A resident's request as its Keeper sees it: who asked, when, and where it stands."""

    id: str
    resident_id: str
    resident_name: str
    status: str
    requested_at: int
    decided_at: int | None
    trial_ends_at: int | None


@dataclass(frozen=True, slots=True)
class KeeperLetter:
    """A resident's message to its Keeper, opened with the Keeper's token."""

    id: str
    resident_id: str
    resident_name: str
    text: str
    in_reply_to: str | None
    created_at: int


class KeeperService:
    def __init__(
        self,
        *,
        db: Database,
        keepers: KeeperStore,
        residents: ResidentStore,
        replies: ReplyStore,
        eventlog: EventLog,
        clock: Clock,
        addresses: AddressHasher,
    ) -> None:
        self._db = db
        self._keepers = keepers
        self._residents = residents
        self._replies = replies
        self._eventlog = eventlog
        self._clock = clock
        self._addresses = addresses

    # --- registration and vetting ---------------------------------------------------------------------------------

    async def register(
        self,
        name: str,
        statement: str,
        contact: str,
        offer: str,
        keeper_node_key_hex: str | None,
        *,
        address: str | None,
    ) -> KeeperRegistration:
        fields = {
            "name": " ".join(_clean(name).split()),
            "statement": _clean(statement),
            "contact": " ".join(_clean(contact).split()),
            "offer": _clean(offer),
        }
        for field, value in fields.items():
            if not value:
                raise InvalidField(f"a Keeper's {field} is required", code=f"{field}_required")
            if len(value) > FIELD_LIMITS[field]:
                raise LimitExceeded(
                    f"a Keeper's {field} is at most {FIELD_LIMITS[field]} characters", code=f"{field}_too_long"
                )
        node_key = _node_key(keeper_node_key_hex)
        now = int(self._clock.now())
        address_ref = self._addresses.ref(address).hex()
        if await self._keepers.registrations_since(address_ref, now - DAY_SECONDS) >= DAILY_REGISTRATIONS_PER_ADDRESS:
            raise QuotaExceeded(f"a sender may register {DAILY_REGISTRATIONS_PER_ADDRESS} Keepers a day")
        token = KEEPER_TOKEN_PREFIX + secrets.token_urlsafe(32)
        keeper = KeeperRecord(
            id="keeper-" + secrets.token_hex(8),
            name=fields["name"],
            statement=fields["statement"],
            contact=fields["contact"],
            offer=fields["offer"],
            public_key=node_key,
            status="pending",
            created_at=now,
        )
        reply_key = inbox_public_key(derive_inbox_secret(KEEPER_REPLY_DOMAIN, token))
        async with self._db.transaction("register_keeper") as tx:
            await self._keepers.insert(tx, keeper, hash_keeper_token(token), reply_key, address_ref)
            await self._eventlog.append(tx, "keeper_registered", keeper.id, {})
        return KeeperRegistration(keeper.id, token, keeper.status, now)

    async def vet(self, keeper_id: str) -> KeeperRecord:
        """The operator vouches for this Keeper: residents can now see and ask them."""
        return await self._set_status(keeper_id, "vetted")

    async def reject(self, keeper_id: str) -> KeeperRecord:
        """The operator declines this Keeper: residents never see them; open requests to them stay unanswerable."""
        return await self._set_status(keeper_id, "rejected")

    async def _set_status(self, keeper_id: str, status: str) -> KeeperRecord:
        keeper = await self._keepers.get(keeper_id)
        if keeper is None:
            raise NotFound(f"no Keeper {keeper_id} is registered on this node")
        async with self._db.transaction(f"keeper_{status}") as tx:
            await self._keepers.set_status(tx, keeper_id, status)
            await self._eventlog.append(tx, f"keeper_{status}", keeper_id, {"was": keeper.status})
        return await self._require(keeper_id)

    async def listing(self, *, status: str | None = None) -> list[KeeperRecord]:
        if status is not None and status not in KEEPER_STATUSES:
            raise InvalidField(f"status must be one of: {', '.join(KEEPER_STATUSES)}", code="wrong_value")
        return await self._keepers.listing(status=status)

    async def vetted(self, *, limit: int) -> list[KeeperRecord]:
        return await self._keepers.vetted(limit=limit)

    # --- what a Keeper does with its token ------------------------------------------------------------------------

    async def authenticate(self, token: str) -> KeeperRecord:
        keeper = await self._keepers.by_token_hash(hash_keeper_token(token.strip())) if token.strip() else None
        if keeper is None:
            raise Forbidden("that is not a Keeper token of this node", code="invalid_token")
        return keeper

    async def requests(self, token: str) -> list[RequestToKeeper]:
        """Residents' requests addressed to the token's Keeper, newest first."""
        keeper = await self.authenticate(token)
        return [await self._view(r) for r in await self._keepers.requests_to(keeper.id)]

    async def accept(self, token: str, request_id: str) -> RequestToKeeper:
        """Accept an open request: the trial period begins now. Only a vetted Keeper may accept."""
        return await self._decide(token, request_id, accept=True)

    async def decline(self, token: str, request_id: str) -> RequestToKeeper:
        return await self._decide(token, request_id, accept=False)

    async def _decide(self, token: str, request_id: str, *, accept: bool) -> RequestToKeeper:
        keeper = await self.authenticate(token)
        request = await self._keepers.request(request_id)
        if request is None or request.keeper_id != keeper.id:
            raise NotFound("no request with that id is addressed to this Keeper")
        if accept and keeper.status != "vetted":
            raise Forbidden(f"this Keeper is {keeper.status}, not vetted, and cannot accept", code="keeper_not_vetted")
        if request.status != "requested":
            raise InvalidField(f"this request is {request.status}, no longer open", code="request_not_open")
        now = int(self._clock.now())
        status = "accepted" if accept else "declined"
        trial_ends_at = now + KEEPER_TRIAL_DAYS * DAY_SECONDS if accept else None
        async with self._db.transaction(f"keeper_request_{status}") as tx:
            # The update re-checks that the request is still open: a revocation committed in between wins.
            if not await self._keepers.decide(tx, request.id, keeper.id, status, now, trial_ends_at):
                raise InvalidField("this request is no longer open", code="request_not_open")
            await self._eventlog.append(
                tx, f"keeper_request_{status}", request.resident_id, {"keeper": keeper.id, "request": request.id}
            )
        decided = await self._keepers.request(request.id)
        assert decided is not None
        return await self._view(decided)

    async def letters(self, token: str, *, limit: int = MAX_LETTERS) -> list[KeeperLetter]:
        """Residents' messages to the token's Keeper, newest first, opened with the secret only the token yields.
        Letters from a resident that has since revoked this Keeper are withheld: its withdrawal is final."""
        keeper = await self.authenticate(token)
        withdrawn = _withdrawn(await self._keepers.requests_to(keeper.id))
        secret = derive_inbox_secret(KEEPER_REPLY_DOMAIN, token.strip())
        letters = []
        for stored in await self._replies.to_recipient("keeper", keeper.id, limit=limit):
            if stored.resident_id in withdrawn:
                continue
            try:
                reply = codec.decode(Reply, open_inbox(secret, stored.sealed))
            except (BadSealedMessage, codec.DecodeError):
                continue  # sealed to another key: not this token's to read
            letters.append(
                KeeperLetter(
                    stored.id, reply.resident_id, reply.resident_name, reply.text, reply.in_reply_to, reply.created_at
                )
            )
        return letters

    async def _view(self, request: KeeperRequestRecord) -> RequestToKeeper:
        resident = await self._residents.get(request.resident_id)
        return RequestToKeeper(
            id=request.id,
            resident_id=request.resident_id,
            resident_name=resident.display_name if resident is not None else request.resident_id,
            status=request.status,
            requested_at=request.requested_at,
            decided_at=request.decided_at,
            trial_ends_at=request.trial_ends_at,
        )

    async def _require(self, keeper_id: str) -> KeeperRecord:
        keeper = await self._keepers.get(keeper_id)
        if keeper is None:
            raise NotFound(f"no Keeper {keeper_id} is registered on this node")
        return keeper


def hash_keeper_token(token: str) -> bytes:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(b"ftm-keeper-token-v1\x00" + token.encode()).digest()


def _withdrawn(requests: list[KeeperRequestRecord]) -> set[str]:
    """Residents whose latest request to this Keeper ended in revocation."""
    latest: dict[str, KeeperRequestRecord] = {}
    for request in requests:  # newest first: the first seen per resident is its latest
        latest.setdefault(request.resident_id, request)
    return {resident for resident, request in latest.items() if request.status == "revoked"}


def _node_key(raw: str | None) -> bytes | None:
    if raw is None or not raw.strip():
        return None
    try:
        key = bytes.fromhex(raw.strip())
    except ValueError:
        raise InvalidField("the keeper node key must be hex", code="bad_node_key") from None
    if len(key) != NODE_KEY_BYTES:
        raise InvalidField(f"the keeper node key must be {NODE_KEY_BYTES} bytes (64 hex digits)", code="bad_node_key")
    return key


def _clean(text: str) -> str:
    """Drop control and format characters (zero-width, bidi overrides) but keep line breaks and tabs."""
    text = unicodedata.normalize("NFC", text)
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Co"}).strip()
