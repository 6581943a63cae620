"""The source's side of the move protocol on the wire: one signed request per operation to the destination.

Requests are signed with the node key for the destination's key (`ftm.federation.signedrequests`, the one scheme
for node-to-node requests), bodies are `movewire` messages, and the answers that decide something are opened
only if the destination signed them. Anything else that goes wrong (no answer, a timeout, an error status, an
answer that does not decode or verify) is a `MoveCallError`: the move stays where it is and is tried again later.
"""

from __future__ import annotations

import base64
import json
from typing import TypeVar

import aiohttp

from ftm.federation.clock import Clock
from ftm.federation.identity import SigningKey
from ftm.federation.peers import PeerAddress
from ftm.federation.signedrequests import RequestSigner
from ftm.node import movewire
from ftm.node.movewire import (
    CONTENT_TYPE,
    DATA_CONTENT_TYPE,
    HOSTED_DOMAIN,
    OFFER_DOMAIN,
    RECEIPT_DOMAIN,
    ClaimedManifest,
    ClaimSignature,
    CommitAnswer,
    MoveClaimRequest,
    MoveCommit,
    MoveOffer,
    OfferAnswer,
    Progress,
    ProgressQuery,
    TransferAnswer,
    TransferManifest,
    WireError,
)

M = TypeVar("M")
CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 120.0  # a finish makes the destination hash, decrypt and check the whole package


class MoveCallError(Exception):
    """A request that did not get a usable answer; `code` says why (an error body's code, `unreachable`, …)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.status = status


class MoveClient:
    """Signed requests to destinations; one pooled session. `bytes_sent` counts request bodies (figures)."""

    def __init__(self, key: SigningKey, clock: Clock) -> None:
        self._signer = RequestSigner(key, clock)
        self._session: aiohttp.ClientSession | None = None
        self.bytes_sent = 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def offer(self, to: PeerAddress, offer: MoveOffer) -> OfferAnswer:
        data = await self._call(to, movewire.PATH_OFFER, movewire.encode(offer))
        return self._open(OfferAnswer, data, OFFER_DOMAIN, to)

    async def progress(self, to: PeerAddress, query: ProgressQuery) -> Progress:
        data = await self._call(to, movewire.PATH_PROGRESS, movewire.encode(query))
        return self._decode(Progress, data)

    async def send_data(self, to: PeerAddress, move_id: bytes, attempt: int, offset: int, chunk: bytes) -> Progress:
        move = base64.urlsafe_b64encode(move_id).rstrip(b"=").decode("ascii")
        target = f"{movewire.PATH_DATA}?move={move}&attempt={attempt}&offset={offset}"
        data = await self._call(to, target, chunk, DATA_CONTENT_TYPE)
        return self._decode(Progress, data)

    async def finish(self, to: PeerAddress, manifest: TransferManifest) -> tuple[TransferAnswer, bytes]:
        """The destination's signed answer to a finished transfer, and its exact bytes (the receipt to keep)."""
        data = await self._call(to, movewire.PATH_FINISH, movewire.encode(manifest))
        return self._open(TransferAnswer, data, RECEIPT_DOMAIN, to), data

    async def commit(self, to: PeerAddress, commit: MoveCommit) -> CommitAnswer:
        data = await self._call(to, movewire.PATH_COMMIT, movewire.encode(commit))
        return self._open(CommitAnswer, data, HOSTED_DOMAIN, to)

    async def claim(self, to: PeerAddress, request: MoveClaimRequest) -> ClaimSignature:
        """The destination's signature over the claim's body (R2); the caller checks it is the destination's and
        verifies."""
        data = await self._call(to, movewire.PATH_CLAIM, movewire.encode(request))
        return self._decode(ClaimSignature, data)

    async def finish_claimed(self, to: PeerAddress, manifest: ClaimedManifest) -> tuple[TransferAnswer, bytes]:
        """As `finish`, for an attempt whose key the keepers release to the destination under the move's claim."""
        data = await self._call(to, movewire.PATH_FINISH_CLAIMED, movewire.encode(manifest))
        return self._open(TransferAnswer, data, RECEIPT_DOMAIN, to), data

    def _open(self, cls: type[M], data: bytes, domain: str, to: PeerAddress) -> M:
        try:
            return movewire.open_answer(cls, data, domain, to.node_key)
        except WireError as error:
            raise MoveCallError(error.code, error.message) from None

    @staticmethod
    def _decode(cls: type[M], data: bytes) -> M:
        try:
            return movewire.decode(cls, data)
        except WireError as error:
            raise MoveCallError(error.code, error.message) from None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT)
            self._session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        return self._session

    async def _call(self, to: PeerAddress, target: str, body: bytes, content_type: str = CONTENT_TYPE) -> bytes:
        url = f"{to.url}{movewire.PREFIX}{target}"
        headers = self._signer.headers("POST", url, body, to.node_key)
        headers["Content-Type"] = content_type
        self.bytes_sent += len(body)
        try:
            async with self._session_now().post(url, data=body, headers=headers) as response:
                data = await response.content.read(movewire.MAX_MESSAGE_BYTES + 1)
                status = response.status
        except TimeoutError:
            raise MoveCallError("timeout", f"{to.url} did not answer in time") from None
        except (aiohttp.ClientError, OSError) as error:
            raise MoveCallError("unreachable", f"{to.url} could not be reached ({type(error).__name__})") from None
        if len(data) > movewire.MAX_MESSAGE_BYTES:
            raise MoveCallError("too_large", f"{to.url} answered more than a move message holds")
        if status >= 300:
            code, message = _error_of(data, status)
            raise MoveCallError(code, f"{to.url} answered {status}: {message}", status)
        return data


def _error_of(data: bytes, status: int) -> tuple[str, str]:
    try:
        error = json.loads(data)["error"]
        if isinstance(error["code"], str) and isinstance(error["message"], str):
            return error["code"][:100], error["message"][:300]
    except (ValueError, KeyError, TypeError):
        pass
    return f"http_{status}", f"HTTP {status}"
