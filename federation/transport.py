"""The client side of the node-to-node API: one method per operation, signed, timed out, size-limited, and kept
away from peers that keep failing.

Every call but `hello` is a signed request (`signedrequests.RequestSigner`) for the peer's pinned key. Before a
call the peer's health (`peerhealth.PeerHealthBook`, keyed by the peer's key in hex, or by URL for `hello`) may
refuse it without sending anything; a connection failure, a timeout, a 5xx or 429 answer, or an answer that does
not decode counts as a failure; any other answer as a success. A successful call to a peer that had failed calls
the `on_reconnect` listeners, so gossip can reconcile with a peer that comes back. Answers are read up to a
per-operation limit and refused beyond it. `stats` counts requests, failures and bytes on the wire (request and
status lines, headers and bodies, each way) by operation.

    TransportError (code, url)
        PeerUnavailable  backing_off: not contacted, the peer is backing off or its circuit is open
        PeerUnreachable  unreachable | timeout: no answer
        PeerRefused      the peer answered an error status; `status`, `code` from its error body
        BadAnswer        too_large | wrong_content_type | malformed_body | bad_signature | … : the answer is unusable
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
from multidict import CIMultiDictProxy

from ftm.federation import codec, gossipwire
from ftm.federation.clock import Clock
from ftm.federation.events import SignedEvent
from ftm.federation.gossipwire import (
    API_PREFIX,
    CHALLENGE_BYTES,
    CONTENT_TYPE,
    MAX_FETCH_ANSWER_BYTES,
    MAX_MESSAGE_BYTES,
    RECONCILE_CONTENT_TYPE,
    Events,
    Fetch,
    Hello,
    IHave,
    Introduce,
    IntroduceAnswer,
    PeerList,
    Push,
    PushAnswer,
    SignedHello,
    SignedPeerList,
    WireError,
)
from ftm.federation.identity import SigningKey
from ftm.federation.peerhealth import PeerHealthBook
from ftm.federation.peers import PeerAddress
from ftm.federation.signedrequests import WINDOW_SECONDS, RequestSigner, b64url, random_nonce

log = logging.getLogger(__name__)
M = TypeVar("M")
_STREAM_FROM = 1024 * 1024


class TransportError(Exception):
    def __init__(self, code: str, url: str, message: str) -> None:
        super().__init__(f"{url}: {message} ({code})")
        self.code = code
        self.url = url


class PeerUnavailable(TransportError):
    """Not contacted: the peer is backing off after failures, or its circuit is open."""


class PeerUnreachable(TransportError):
    """The request got no answer: connection refused or reset, or a timeout."""


class PeerRefused(TransportError):
    """The peer answered with an error status."""

    def __init__(self, code: str, url: str, message: str, status: int) -> None:
        super().__init__(code, url, message)
        self.status = status


class BadAnswer(TransportError):
    """The peer answered, but not with something usable."""


@dataclass(frozen=True, slots=True)
class TransportLimits:
    connect_timeout: float = 5.0
    request_timeout: float = 30.0  # the whole request, answer included
    connections_per_peer: int = 4
    max_connections: int = 128


@dataclass
class TransportStats:
    """Counts since start, by operation (`hello`, `events`, `ihave`, `fetch`, `reconcile`, `peers`, …)."""

    requests: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # by "operation:code"
    bytes_sent: Counter[str] = field(default_factory=Counter)
    bytes_received: Counter[str] = field(default_factory=Counter)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_sent.values()) + sum(self.bytes_received.values())


class Transport:
    """Calls peers. Use as `async with Transport(...)`, or call `close()`; one session, pooled connections."""

    def __init__(
        self,
        key: SigningKey,
        clock: Clock,
        health: PeerHealthBook,
        limits: TransportLimits | None = None,
        *,
        nonce: Callable[[], bytes] = random_nonce,
    ) -> None:
        self._signer = RequestSigner(key, clock, nonce)
        self._clock = clock
        self.health = health
        self.limits = limits or TransportLimits()
        self.stats = TransportStats()
        self.on_reconnect: list[Callable[[PeerAddress], None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # Operations.

    async def hello(self, url: str) -> Hello:
        """Who answers at `url` (unsigned request, signed answer over a fresh challenge)."""
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        target = f"{url}{API_PREFIX}{gossipwire.PATH_HELLO}?challenge={b64url(challenge)}"
        data = await self._call(gossipwire.PATH_HELLO, None, target, "GET", b"", None, MAX_MESSAGE_BYTES, url)
        signed = self._decode(SignedHello, data, MAX_MESSAGE_BYTES, url)
        try:
            return gossipwire.open_hello(signed, challenge)
        except WireError as error:
            self.health.record_failure(url)
            raise BadAnswer(error.code, url, error.message) from None

    def proven_reachable(self, peer: PeerAddress) -> None:
        """`peer` just proved it answers at `peer.url` (a signed hello over our challenge): forget the backoff it
        earned, perhaps at an address it has since left, so the next call goes out at once."""
        self.health.record_success(_health_key(peer))

    async def introduce(self, peer: PeerAddress, own_url: str) -> bool:
        """Tell `peer` where we answer; True if it verified us at once."""
        answer = await self._message(gossipwire.PATH_INTRODUCE, peer, Introduce(own_url), IntroduceAnswer)
        return answer.verified

    async def push(
        self, peer: PeerAddress, events: Sequence[SignedEvent], hops: Sequence[int], sent_to: Sequence[bytes] = ()
    ) -> PushAnswer:
        """Send events; the peer's acceptance answer for each, in order."""
        body = codec.encode(Push(tuple(events), tuple(hops), tuple(sent_to)))
        data = await self._call(
            gossipwire.PATH_EVENTS, peer, self._url(peer, gossipwire.PATH_EVENTS), "POST", body, CONTENT_TYPE,
            MAX_MESSAGE_BYTES,
        )  # fmt: skip
        answer = self._decode(PushAnswer, data, MAX_MESSAGE_BYTES, peer.url, peer)
        if len(answer.answers) != len(events):
            raise self._bad(peer, "wrong_answer_count", "the push answer does not answer every event")
        return answer

    async def ihave(self, peer: PeerAddress, ids: Sequence[bytes], link: str = "") -> None:
        """Announce ids; `link` may carry a change to gossip's view ("join", "leave")."""
        body = codec.encode(IHave(tuple(ids), str(link)))
        url = self._url(peer, gossipwire.PATH_IHAVE)
        await self._call(gossipwire.PATH_IHAVE, peer, url, "POST", body, CONTENT_TYPE, 0)

    async def fetch(self, peer: PeerAddress, ids: Sequence[bytes]) -> Events:
        """The events among `ids` that the peer has (unchecked: they go through acceptance)."""
        body = codec.encode(Fetch(tuple(ids)))
        url = self._url(peer, gossipwire.PATH_FETCH)
        data = await self._call(gossipwire.PATH_FETCH, peer, url, "POST", body, CONTENT_TYPE, MAX_FETCH_ANSWER_BYTES)
        answer = self._decode(Events, data, MAX_FETCH_ANSWER_BYTES, peer.url, peer)
        if len(answer.events) > len(ids):
            raise self._bad(peer, "wrong_answer_count", "the fetch answer holds more events than were asked for")
        return answer

    async def reconcile(self, peer: PeerAddress, message: bytes) -> bytes:
        """One round trip of set reconciliation: our message, the peer's reply (both `reconcilewire` bytes)."""
        url = self._url(peer, gossipwire.PATH_RECONCILE)
        return await self._call(
            gossipwire.PATH_RECONCILE, peer, url, "POST", message, RECONCILE_CONTENT_TYPE, MAX_MESSAGE_BYTES
        )

    async def peers(self, peer: PeerAddress, own_key: bytes) -> PeerList:
        """The peer's signed list of peers it recently succeeded with, checked (signer, audience, freshness)."""
        url = self._url(peer, gossipwire.PATH_PEERS)
        data = await self._call(gossipwire.PATH_PEERS, peer, url, "POST", b"", None, MAX_MESSAGE_BYTES)
        signed = self._decode(SignedPeerList, data, MAX_MESSAGE_BYTES, peer.url, peer)
        try:
            return gossipwire.open_peer_list(signed, peer.node_key, own_key, self._clock.now(), WINDOW_SECONDS)
        except WireError as error:
            raise self._bad(peer, error.code, error.message) from None

    # Internals.

    async def _message(self, operation: str, peer: PeerAddress, message: object, answer_type: type[M]) -> M:
        url = self._url(peer, operation)
        data = await self._call(operation, peer, url, "POST", codec.encode(message), CONTENT_TYPE, MAX_MESSAGE_BYTES)
        return self._decode(answer_type, data, MAX_MESSAGE_BYTES, peer.url, peer)

    @staticmethod
    def _url(peer: PeerAddress, operation: str) -> str:
        return f"{peer.url}{API_PREFIX}{operation}"

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            limits = self.limits
            connector = aiohttp.TCPConnector(limit=limits.max_connections, limit_per_host=limits.connections_per_peer)
            timeout = aiohttp.ClientTimeout(total=limits.request_timeout, connect=limits.connect_timeout)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False)
        return self._session

    async def _call(
        self,
        operation: str,
        peer: PeerAddress | None,
        url: str,
        method: str,
        body: bytes,
        content_type: str | None,
        max_answer: int,
        health_key: str | None = None,
    ) -> bytes:
        """One request; the answer body of a 2xx answer, or a TransportError. Health and stats are kept here."""
        name = health_key if health_key is not None else _health_key(peer)
        base = peer.url if peer is not None else name
        if not self.health.allow(name):
            self.stats.failures[f"{operation}:backing_off"] += 1
            raise PeerUnavailable("backing_off", base, "backing off after failures")
        had_failed = self.health.status(name).consecutive_failures > 0
        headers: dict[str, str] = {}
        if peer is not None:
            headers = self._signer.headers(method, url, body, peer.node_key)
        if content_type is not None:
            headers["Content-Type"] = content_type
        self.stats.requests[operation] += 1
        try:
            # aiohttp warns that a large bytes body "might lock the event loop"; as a stream it is sent in chunks.
            data: bytes | io.BytesIO = body if len(body) < _STREAM_FROM else io.BytesIO(body)
            async with self._session_now().request(method, url, data=data, headers=headers) as response:
                self._count_request(operation, method, url, response.request_info.headers, body)
                data = await self._read(response, max_answer, base)
                self._count_answer(operation, response, data)
                status = response.status
                answer_type = response.headers.get("Content-Type", "")
        except TransportError as error:
            self._fail(operation, name, error.code)
            raise
        except TimeoutError:  # before ClientError: aiohttp's timeout errors are both
            self._fail(operation, name, "timeout")
            raise PeerUnreachable("timeout", base, "no answer in time") from None
        except (aiohttp.ClientError, OSError) as error:
            self._fail(operation, name, "unreachable")
            raise PeerUnreachable("unreachable", base, f"{type(error).__name__}") from None
        if status >= 300:
            code, message = _error_of(data, status)
            if status >= 500 or status == 429:
                self._fail(operation, name, code)
            else:
                self._succeed(name, peer, had_failed)
                self.stats.failures[f"{operation}:{code}"] += 1
            raise PeerRefused(code, base, message, status)
        expected = RECONCILE_CONTENT_TYPE if operation == gossipwire.PATH_RECONCILE else CONTENT_TYPE
        if max_answer > 0 and answer_type.split(";")[0].strip() != expected:
            self._fail(operation, name, "wrong_content_type")
            raise BadAnswer("wrong_content_type", base, f"the answer is {answer_type!r}, not {expected}")
        self._succeed(name, peer, had_failed)
        return data

    async def _read(self, response: aiohttp.ClientResponse, limit: int, base: str) -> bytes:
        limit = max(limit, 4096)  # error bodies are small JSON even where no answer is expected
        if response.content_length is not None and response.content_length > limit:
            raise BadAnswer("too_large", base, f"the answer is larger than {limit} bytes")
        data = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            data += chunk
            if len(data) > limit:
                raise BadAnswer("too_large", base, f"the answer is larger than {limit} bytes")
        return bytes(data)

    def _decode(self, cls: type[M], data: bytes, limit: int, base: str, peer: PeerAddress | None = None) -> M:
        try:
            return gossipwire.decode(cls, data, limit)
        except WireError as error:
            self.health.record_failure(_health_key(peer) if peer is not None else base)
            raise BadAnswer(error.code, base, error.message) from None

    def _bad(self, peer: PeerAddress, code: str, message: str) -> BadAnswer:
        self.health.record_failure(_health_key(peer))
        return BadAnswer(code, peer.url, message)

    def _fail(self, operation: str, name: str, code: str) -> None:
        self.stats.failures[f"{operation}:{code}"] += 1
        self.health.record_failure(name)

    def _succeed(self, name: str, peer: PeerAddress | None, had_failed: bool) -> None:
        self.health.record_success(name)
        if had_failed and peer is not None:
            for listener in self.on_reconnect:
                listener(peer)

    def _count_request(
        self, operation: str, method: str, url: str, headers: CIMultiDictProxy[str], body: bytes
    ) -> None:
        target = url.split("://", 1)[-1]
        target = target[target.find("/") :] if "/" in target else "/"
        size = len(method) + len(target) + len(" HTTP/1.1\r\n") + 2 + len(body)
        size += sum(len(name) + len(value) + 4 for name, value in headers.items())
        self.stats.bytes_sent[operation] += size

    def _count_answer(self, operation: str, response: aiohttp.ClientResponse, data: bytes) -> None:
        size = len(f"HTTP/1.1 {response.status} {response.reason or ''}\r\n") + 2 + len(data)
        size += sum(len(name) + len(value) + 4 for name, value in response.raw_headers)
        self.stats.bytes_received[operation] += size


def _health_key(peer: PeerAddress | None) -> str:
    assert peer is not None
    return peer.node_key.hex()


def _error_of(data: bytes, status: int) -> tuple[str, str]:
    """The node's error body `{"error": {"code", "message"}}`, or a code made from the status."""
    try:
        error = json.loads(data)["error"]
        code, message = error["code"], error["message"]
        if isinstance(code, str) and isinstance(message, str):
            return code[:100], message[:500]
    except (ValueError, KeyError, TypeError):
        pass
    return f"http_{status}", f"the peer answered HTTP {status}"
