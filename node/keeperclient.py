"""The host's side of the keeper protocol on the wire: one signed request per operation to a keeper node.

Requests are signed with the node key for the keeper's key (`ftm.federation.signedrequests`), bodies are
`ftm.keeper.protocol` messages (replica bytes travel raw), and every answer is checked before it is believed: a
signed answer only if the keeper it was sent to signed it, and any answer only if it is about what was asked (the
resident, the epoch, this host, the keeper's own key, the nonce, the ephemeral key). Anything else that goes wrong
(no answer, a timeout, an error status, an answer that does not decode, verify or match) is a `KeeperCallError`;
the caller records it and tries again later. docs/custody.md ("Keeper protocol") is the specification.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiohttp

from ftm.federation.clock import Clock
from ftm.federation.identity import SigningKey
from ftm.federation.signedrequests import RequestSigner
from ftm.keeper import merkle, protocol
from ftm.keeper.protocol import (
    CONTENT_TYPE,
    DATA_CONTENT_TYPE,
    HOLDING_DOMAIN,
    ORDER_DOMAIN,
    PROOF_DOMAIN,
    RECEIPT_DOMAIN,
    RELEASE_DOMAIN,
    Ack,
    Challenge,
    Commit,
    Deposit,
    DestroyOrder,
    DestroyReceipt,
    DisasterClaim,
    Heartbeat,
    Holding,
    Holdings,
    HoldingsAnswer,
    MoveClaim,
    Progress,
    Proof,
    ReadRequest,
    Release,
    ReleaseRequest,
    Seal,
    TombstoneOrder,
    Veto,
    WireError,
)
from ftm.keeper.server import HEALTH_PATH

M = TypeVar("M")
T = TypeVar("T")
CONNECT_TIMEOUT = 10.0
_ERROR_BODY_BYTES = 4096
_SIGNED_FRAMING = 256  # a SignedAnswer's map, field names and signature around the inner message
MAX_HOLDINGS_ANSWER_BYTES = 4 * 1024 * 1024  # up to protocol.MAX_RESIDENTS_LISTED entries
KEY_BYTES = 32  # Ed25519 public keys


class KeeperCallError(Exception):
    """A request that did not get a usable answer; `code` says why (the keeper's error code, `unreachable`, …)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class KeeperAddress:
    key: bytes  # the keeper's Ed25519 key: the audience of our requests and the signer of its answers
    url: str  # its base URL, without PREFIX


@dataclass(frozen=True, slots=True)
class Signed(Generic[T]):
    """A signed answer opened: the message, and the exact bytes received (what the host keeps as evidence)."""

    message: T
    raw: bytes


class KeeperClient:
    """Signed requests to keepers; one pooled session. `bytes_sent` counts request bodies (figures)."""

    def __init__(self, key: SigningKey, clock: Clock, *, timeout: float = 30.0) -> None:
        self._key = key
        self._signer = RequestSigner(key, clock)
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.bytes_sent = 0

    @property
    def host_key(self) -> bytes:
        return self._key.public_key

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- delivering an epoch ------------------------------------------------------------------------------------

    async def deposit(self, to: KeeperAddress, deposit: Deposit) -> Progress:
        data = await self._call(to, protocol.PATH_DEPOSIT, protocol.encode(deposit))
        return self._progress(data, deposit.resident_id, deposit.epoch)

    async def data(self, to: KeeperAddress, resident_id: str, epoch: int, offset: int, chunk: bytes) -> Progress:
        target = f"{protocol.PATH_DATA}?resident={resident_id}&epoch={epoch}&offset={offset}"
        data = await self._call(to, target, chunk, DATA_CONTENT_TYPE)
        return self._progress(data, resident_id, epoch)

    async def seal(
        self, to: KeeperAddress, seal: Seal, *, x: int, commitments_digest: bytes, root: bytes, length: int
    ) -> Signed[Holding]:
        """The keeper's signed Holding, which must state exactly what was dealt to it and what it was sent."""
        data = await self._call(to, protocol.PATH_SEAL, protocol.encode(seal))
        holding = self._open(Holding, data, HOLDING_DOMAIN, to)
        expected = (seal.resident_id, seal.epoch, to.key, self.host_key, x, commitments_digest, root, length)
        actual = (
            holding.resident_id, holding.epoch, holding.keeper_key, holding.host_key, holding.x,
            holding.commitments_digest, holding.root, holding.length,
        )  # fmt: skip
        if actual != expected:
            raise KeeperCallError("wrong_answer", "the holding is not of what was deposited")
        return Signed(holding, data)

    async def commit(self, to: KeeperAddress, commit: Commit) -> Ack:
        data = await self._call(to, protocol.PATH_COMMIT, protocol.encode(commit))
        return self._ack(data, commit.resident_id, commit.epoch)

    # --- destroying ---------------------------------------------------------------------------------------------

    async def destroy(self, to: KeeperAddress, order: DestroyOrder) -> Signed[DestroyReceipt]:
        if order.host_key != self.host_key:
            raise ValueError("a destroy order names this host")
        body = protocol.encode(protocol.sign_answer(self._key, ORDER_DOMAIN, order))
        data = await self._call(to, protocol.PATH_DESTROY, body)
        return self._receipt(data, to, order.resident_id, order.epoch, order.reason)

    async def tombstone(self, to: KeeperAddress, order: TombstoneOrder) -> Signed[DestroyReceipt]:
        data = await self._call(to, protocol.PATH_TOMBSTONE, protocol.encode(order))
        receipt = self._open(DestroyReceipt, data, RECEIPT_DOMAIN, to)
        if (receipt.resident_id, receipt.keeper_key, receipt.reason) != (
            order.resident_id, to.key, protocol.DestroyReason.TOMBSTONE
        ):  # fmt: skip
            raise KeeperCallError("wrong_answer", "the receipt is not for this tombstone")
        return Signed(receipt, data)

    # --- opening ------------------------------------------------------------------------------------------------

    async def release(self, to: KeeperAddress, request: ReleaseRequest) -> Signed[Release]:
        """The keeper's signed release of its share, sealed to the request's ephemeral key (not opened here)."""
        data = await self._call(to, protocol.PATH_RELEASE, protocol.encode(request))
        release = self._open(Release, data, RELEASE_DOMAIN, to)
        expected = (request.resident_id, request.epoch, request.purpose, self.host_key, request.ephemeral_key)
        actual = (release.resident_id, release.epoch, release.purpose, release.requester_key, release.ephemeral_key)
        if actual != expected:
            raise KeeperCallError("wrong_answer", "the release is not an answer to this request")
        return Signed(release, data)

    async def read(self, to: KeeperAddress, request: ReadRequest) -> bytes:
        if not 0 < request.length <= protocol.CHUNK_BYTES:
            raise ValueError(f"a read asks for 1 to {protocol.CHUNK_BYTES} bytes")
        data = await self._call(to, protocol.PATH_READ, protocol.encode(request), max_answer=request.length)
        return data

    # --- proofs and liveness ------------------------------------------------------------------------------------

    async def challenge(self, to: KeeperAddress, challenge: Challenge) -> Signed[Proof]:
        """The keeper's signed answer to a possession challenge; the caller verifies the proofs inside it."""
        limit = merkle.max_proof_bytes(challenge.samples) + protocol.MAX_MESSAGE_BYTES
        data = await self._call(to, protocol.PATH_CHALLENGE, protocol.encode(challenge), max_answer=limit)
        proof = self._open(Proof, data, PROOF_DOMAIN, to, max_bytes=limit)
        expected = (challenge.resident_id, challenge.epoch, challenge.nonce, to.key)
        if (proof.resident_id, proof.epoch, proof.nonce, proof.keeper_key) != expected:
            raise KeeperCallError("wrong_answer", "the proof is not an answer to this challenge")
        return Signed(proof, data)

    async def heartbeat(self, to: KeeperAddress, heartbeat: Heartbeat) -> Ack:
        data = await self._call(to, protocol.PATH_HEARTBEAT, protocol.encode(heartbeat))
        return self._decode(Ack, data)

    async def holdings(self, to: KeeperAddress, host_key: bytes | None = None) -> HoldingsAnswer:
        """What the keeper holds for `host_key` (by default this client's own key): a restore asks about the old
        host's."""
        host_key = self.host_key if host_key is None else host_key
        body = protocol.encode(Holdings(protocol.PROTOCOL_VERSION, host_key))
        data = await self._call(to, protocol.PATH_HOLDINGS, body, max_answer=MAX_HOLDINGS_ANSWER_BYTES)
        answer = self._decode(HoldingsAnswer, data, MAX_HOLDINGS_ANSWER_BYTES)
        if (answer.keeper_key, answer.host_key) != (to.key, host_key):
            raise KeeperCallError("wrong_answer", "the holdings are another keeper's or another host's")
        return answer

    async def keeper_key(self, url: str) -> bytes:
        """The key a keeper at `url` says it has (`GET /healthz`, unsigned): how a restore addresses keepers it
        knows only by URL. Trusting it costs nothing but availability: every share, replica and key is verified."""
        try:
            async with self._session_now().get(f"{url.rstrip('/')}{HEALTH_PATH}") as response:
                status = response.status
                data = await response.content.read(_ERROR_BODY_BYTES)
        except TimeoutError:
            raise KeeperCallError("timeout", f"{url} did not answer in time") from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            raise KeeperCallError("unreachable", f"{url} could not be reached ({type(error).__name__})") from None
        try:
            key = bytes.fromhex(json.loads(data)["keeper_key"]) if status == 200 else b""
        except (ValueError, KeyError, TypeError):
            key = b""
        if len(key) != KEY_BYTES:
            raise KeeperCallError("not_a_keeper", f"{url} does not answer as a keeper ({HEALTH_PATH})", status)
        return key

    # --- claims (release rules R2 and R3) -----------------------------------------------------------------------

    async def move(self, to: KeeperAddress, claim: MoveClaim) -> Ack:
        """Submit a move claim this node is party to; the Ack's `at` is when the keeper will release under it."""
        data = await self._call(to, protocol.PATH_MOVE, protocol.encode(claim))
        return self._decode(Ack, data)

    async def veto(self, to: KeeperAddress, veto: Veto) -> Ack:
        """Veto a move claim (as the resident's host, or a guardian); the keeper answers `vetoed`."""
        data = await self._call(to, protocol.PATH_VETO, protocol.encode(veto))
        return self._decode(Ack, data)

    async def disaster(self, to: KeeperAddress, claim: DisasterClaim) -> Ack:
        """Submit a disaster claim this node signed; the Ack's `at` is when its waiting period ends."""
        data = await self._call(to, protocol.PATH_DISASTER, protocol.encode(claim))
        return self._decode(Ack, data)

    # --- the wire -----------------------------------------------------------------------------------------------

    def _progress(self, data: bytes, resident_id: str, epoch: int) -> Progress:
        progress = self._decode(Progress, data)
        if (progress.resident_id, progress.epoch) != (resident_id, epoch) or progress.received < 0:
            raise KeeperCallError("wrong_answer", "the progress is about another epoch")
        return progress

    def _ack(self, data: bytes, resident_id: str, epoch: int) -> Ack:
        ack = self._decode(Ack, data)
        if (ack.resident_id, ack.epoch) != (resident_id, epoch):
            raise KeeperCallError("wrong_answer", "the acknowledgement is about another epoch")
        return ack

    def _receipt(
        self, data: bytes, to: KeeperAddress, resident_id: str, epoch: int, reason: str
    ) -> Signed[DestroyReceipt]:
        receipt = self._open(DestroyReceipt, data, RECEIPT_DOMAIN, to)
        if (receipt.resident_id, receipt.epoch, receipt.keeper_key, receipt.reason) != (
            resident_id, epoch, to.key, reason
        ):  # fmt: skip
            raise KeeperCallError("wrong_answer", "the receipt is not for this order")
        return Signed(receipt, data)

    @staticmethod
    def _open(
        cls: type[M], data: bytes, domain: str, to: KeeperAddress, max_bytes: int = protocol.MAX_MESSAGE_BYTES
    ) -> M:
        try:
            message = protocol.open_answer(cls, data, domain, to.key, max_bytes)
        except WireError as error:
            raise KeeperCallError(error.code, error.message) from None
        if getattr(message, "version", protocol.PROTOCOL_VERSION) != protocol.PROTOCOL_VERSION:
            raise KeeperCallError("unsupported_version", f"version {protocol.PROTOCOL_VERSION} is the only one spoken")
        return message

    @staticmethod
    def _decode(cls: type[M], data: bytes, max_bytes: int = protocol.MAX_MESSAGE_BYTES) -> M:
        try:
            return protocol.decode(cls, data, max_bytes)
        except WireError as error:
            raise KeeperCallError(error.code, error.message) from None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._timeout, connect=min(CONNECT_TIMEOUT, self._timeout))
            self._session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        return self._session

    async def _call(
        self,
        to: KeeperAddress,
        target: str,
        body: bytes,
        content_type: str = CONTENT_TYPE,
        *,
        max_answer: int = protocol.MAX_MESSAGE_BYTES + _SIGNED_FRAMING,
    ) -> bytes:
        url = f"{to.url.rstrip('/')}{protocol.PREFIX}{target}"
        headers = self._signer.headers("POST", url, body, to.key)
        headers["Content-Type"] = content_type
        self.bytes_sent += len(body)
        try:
            async with self._session_now().post(url, data=body, headers=headers) as response:
                status = response.status
                limit = max_answer if status < 300 else _ERROR_BODY_BYTES
                data = await _read_at_most(response, limit + 1)
        except TimeoutError:
            raise KeeperCallError("timeout", f"{to.url} did not answer in time") from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            raise KeeperCallError("unreachable", f"{to.url} could not be reached ({type(error).__name__})") from None
        if status >= 300:
            code, message = _error_of(data, status)
            raise KeeperCallError(code, f"{to.url} answered {status}: {message}", status)
        if len(data) > limit:
            raise KeeperCallError("too_large", f"{to.url} answered more than the message may hold")
        return data


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or its first `limit` bytes if it is longer: in one piece when its length is declared (`read(n)`
    alone gives only what has arrived, which for a 1 MiB replica piece is rarely all of it)."""
    declared = response.content_length
    if declared is not None and declared <= limit:
        try:
            return await response.content.readexactly(declared)
        except asyncio.IncompleteReadError as short:
            return short.partial
    data = bytearray()
    while len(data) < limit and (piece := await response.content.read(limit - len(data))):
        data += piece
    return bytes(data)


def _error_of(data: bytes, status: int) -> tuple[str, str]:
    """The keeper's error body `{"error": {"code", "message"}}`, or a code made of the status."""
    try:
        error = json.loads(data)["error"]
        if isinstance(error["code"], str) and isinstance(error["message"], str):
            return error["code"][:100], error["message"][:300]
    except (ValueError, KeyError, TypeError):
        pass
    return f"http_{status}", f"HTTP {status}"
