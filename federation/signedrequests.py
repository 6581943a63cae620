"""Signed node-to-node HTTP requests: the client-side signer, the server-side verifier and its nonce cache.

A request carries six headers; the signature covers a canonical string of the method, the request target (path
and query exactly as sent), the timestamp, the nonce, the SHA-256 of the body, the signer's key and the key of the
node it is meant for (so a peer cannot replay what we sent it to a third node), signed in the domain
`ftm-node-request-v1` through `identity`. The verifier checks, cheapest first: headers present and well formed →
audience is us → key accepted → timestamp within ±5 minutes of our clock → body hash → signature → nonce unseen
(recorded only after the signature verifies, so unsigned junk cannot fill the cache). docs/federation.md is
the specification.

    SignedRequestError (code, status)
        missing_signature_header 400 · malformed_signature_header 400 · wrong_audience 401 · unknown_key 403 ·
        timestamp_expired 401 · timestamp_in_future 401 · body_too_large 413 · body_hash_mismatch 401 ·
        bad_signature 401 · replayed_nonce 401
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import heapq
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from yarl import URL

from ftm.federation.clock import Clock
from ftm.federation.identity import BadSignature, SigningKey, verify

DOMAIN = "ftm-node-request-v1"
WINDOW_SECONDS = 300
NONCE_BYTES = 16
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_NONCE_CACHE_ENTRIES = 100_000

HEADER_KEY = "FTM-Key"
HEADER_AUDIENCE = "FTM-Audience"
HEADER_TIMESTAMP = "FTM-Timestamp"
HEADER_NONCE = "FTM-Nonce"
HEADER_BODY_HASH = "FTM-Content-SHA256"
HEADER_SIGNATURE = "FTM-Signature"
HEADERS = (HEADER_KEY, HEADER_AUDIENCE, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_BODY_HASH, HEADER_SIGNATURE)

_TIMESTAMP = re.compile(r"(?:0|[1-9][0-9]{0,15})")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_TARGET = re.compile(r"/[\x21-\x7e]*")  # origin-form request target: printable ASCII, no spaces
_METHOD = re.compile(r"[A-Z]{1,16}")


class SignedRequestError(Exception):
    """A request refused by the verifier; `code` is stable and `status` is the HTTP status to answer with."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_b64url(text: str, size: int) -> bytes | None:
    """`size` bytes from unpadded base64url, or None unless `text` is exactly their canonical encoding."""
    if len(text) != (size * 4 + 2) // 3 or not _TOKEN_CHARS.fullmatch(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the checks above leave nothing to fail
        return None
    return data if len(data) == size and b64url(data) == text else None


def canonical_request(
    method: str, target: str, timestamp: int, nonce: str, body_hash: str, key: str, audience: str
) -> bytes:
    """The exact bytes signed (before the domain framing): seven lines joined by LF, ASCII."""
    return "\n".join((method, target, str(timestamp), nonce, body_hash, key, audience)).encode("ascii")


def random_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


@dataclass(frozen=True, slots=True)
class RequestSigner:
    """Signs our outgoing requests. `nonce` is injectable so tests can replay on purpose."""

    key: SigningKey
    clock: Clock
    nonce: Callable[[], bytes] = random_nonce

    def headers(self, method: str, url: URL | str, body: bytes, audience: bytes) -> dict[str, str]:
        """The six headers for sending `body` to `url` with `method`, for the node whose key is `audience`."""
        method = method.upper()
        target = URL(url).raw_path_qs
        if not _METHOD.fullmatch(method) or not _TARGET.fullmatch(target):
            raise ValueError("method or request target cannot be signed")
        nonce = self.nonce()
        if len(nonce) != NONCE_BYTES or len(audience) != 32:
            raise ValueError("a nonce is 16 bytes and an audience key 32")
        values = {
            HEADER_KEY: b64url(self.key.public_key),
            HEADER_AUDIENCE: b64url(audience),
            HEADER_TIMESTAMP: str(int(self.clock.now())),
            HEADER_NONCE: b64url(nonce),
            HEADER_BODY_HASH: b64url(hashlib.sha256(body).digest()),
        }
        signed = canonical_request(
            method,
            target,
            int(values[HEADER_TIMESTAMP]),
            values[HEADER_NONCE],
            values[HEADER_BODY_HASH],
            values[HEADER_KEY],
            values[HEADER_AUDIENCE],
        )
        values[HEADER_SIGNATURE] = b64url(self.key.sign(DOMAIN, signed))
        return values

    def request(
        self, session: aiohttp.ClientSession, method: str, url: URL | str, *, body: bytes = b"", audience: bytes
    ) -> Any:
        """`session.request(...)` with the body and signature headers: use as `async with signer.request(...)`."""
        url = URL(url)
        return session.request(method, url, data=body, headers=self.headers(method, url, body, audience))


class NonceCheck(enum.Enum):
    NEW = "new"
    REPLAYED = "replayed"
    TOO_OLD = "too_old"  # older than what the cache still remembers after evicting under pressure


class NonceCache:
    """The (key, nonce) pairs seen, each kept until its timestamp leaves the window; at most `max_entries`.

    When full, the entry expiring first is evicted and the cache's `floor` rises to its expiry: from then on a
    request expiring at or before the floor is refused as too old, because its nonce may have been among those
    forgotten. So pressure shrinks the window instead of opening a door to replays.
    """

    def __init__(self, max_entries: int = DEFAULT_NONCE_CACHE_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("the nonce cache needs room for at least one entry")
        self.max_entries = max_entries
        self.floor = float("-inf")
        self._expiry: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def remember(self, key: bytes, nonce: bytes, expires_at: float, now: float) -> NonceCheck:
        heap = self._heap
        while heap and heap[0][0] < now:
            del self._expiry[heapq.heappop(heap)[1]]
        if expires_at <= self.floor:
            return NonceCheck.TOO_OLD
        entry = key + nonce
        if entry in self._expiry:
            return NonceCheck.REPLAYED
        if len(heap) >= self.max_entries:
            evicted_at, evicted = heapq.heappop(heap)
            del self._expiry[evicted]
            self.floor = max(self.floor, evicted_at)
            if expires_at <= self.floor:
                return NonceCheck.TOO_OLD
        self._expiry[entry] = expires_at
        heapq.heappush(heap, (expires_at, entry))
        return NonceCheck.NEW


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    key: bytes  # the signer's public key: the peer node
    body: bytes
    timestamp: int
    nonce: bytes


def _refuse(code: str, status: int, message: str) -> SignedRequestError:
    return SignedRequestError(code, status, message)


class RequestVerifier:
    """Checks incoming signed requests addressed to the node whose public key is `own_key`."""

    def __init__(
        self,
        own_key: bytes,
        clock: Clock,
        nonce_cache: NonceCache | None = None,
        *,
        window: int = WINDOW_SECONDS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        accept_key: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.own_key = own_key
        self.clock = clock
        self.nonce_cache = nonce_cache if nonce_cache is not None else NonceCache()
        self.window = window
        self.max_body_bytes = max_body_bytes
        self.accept_key = accept_key

    def check(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> VerifiedRequest:
        """Verify one request given its parts; raises SignedRequestError. Records the nonce when it passes."""
        missing = [name for name in HEADERS if name not in headers]
        if missing:
            raise _refuse("missing_signature_header", 400, f"the request lacks the {missing[0]} header")
        getall = getattr(headers, "getall", None)  # a multidict may hold a header twice: which one was meant?
        if getall is not None and any(len(getall(name)) > 1 for name in HEADERS):
            raise _refuse("malformed_signature_header", 400, "a signature header appears more than once")
        key = parse_b64url(headers[HEADER_KEY], 32)
        audience = parse_b64url(headers[HEADER_AUDIENCE], 32)
        nonce = parse_b64url(headers[HEADER_NONCE], NONCE_BYTES)
        body_hash = parse_b64url(headers[HEADER_BODY_HASH], 32)
        signature = parse_b64url(headers[HEADER_SIGNATURE], 64)
        timestamp_text = headers[HEADER_TIMESTAMP]
        for name, value in (
            (HEADER_KEY, key),
            (HEADER_AUDIENCE, audience),
            (HEADER_NONCE, nonce),
            (HEADER_BODY_HASH, body_hash),
            (HEADER_SIGNATURE, signature),
        ):
            if value is None:
                raise _refuse("malformed_signature_header", 400, f"the {name} header is malformed")
        if not _TIMESTAMP.fullmatch(timestamp_text):
            raise _refuse("malformed_signature_header", 400, f"the {HEADER_TIMESTAMP} header is malformed")
        if not _METHOD.fullmatch(method) or not _TARGET.fullmatch(target):
            raise _refuse("malformed_signature_header", 400, "the method or request target cannot be verified")
        assert key is not None and nonce is not None and body_hash is not None and signature is not None
        if audience != self.own_key:
            raise _refuse("wrong_audience", 401, "the request was signed for another node")
        if self.accept_key is not None and not self.accept_key(key):
            raise _refuse("unknown_key", 403, "this node does not accept requests from that key")
        timestamp = int(timestamp_text)
        now = self.clock.now()
        if now - timestamp > self.window:
            raise _refuse("timestamp_expired", 401, f"the request is more than {self.window} s old")
        if timestamp - now > self.window:
            raise _refuse("timestamp_in_future", 401, f"the request is more than {self.window} s in the future")
        if len(body) > self.max_body_bytes:
            raise _refuse("body_too_large", 413, f"the body is larger than {self.max_body_bytes} bytes")
        if hashlib.sha256(body).digest() != body_hash:
            raise _refuse("body_hash_mismatch", 401, "the body does not match its signed hash")
        signed = canonical_request(
            method,
            target,
            timestamp,
            headers[HEADER_NONCE],
            headers[HEADER_BODY_HASH],
            headers[HEADER_KEY],
            headers[HEADER_AUDIENCE],
        )
        try:
            verify(key, DOMAIN, signed, signature)
        except BadSignature:
            raise _refuse("bad_signature", 401, "the signature does not verify") from None
        seen = self.nonce_cache.remember(key, nonce, timestamp + self.window, now)
        if seen is NonceCheck.REPLAYED:
            raise _refuse("replayed_nonce", 401, "this nonce was already used")
        if seen is NonceCheck.TOO_OLD:
            raise _refuse("timestamp_expired", 401, "the request is older than the replay cache still covers")
        return VerifiedRequest(key, body, timestamp, nonce)

    async def verify(self, request: web.Request) -> VerifiedRequest:
        """Read the body (refusing one over the limit before reading it) and `check` the request."""
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise _refuse("body_too_large", 413, f"the body is larger than {self.max_body_bytes} bytes")
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > self.max_body_bytes:
                raise _refuse("body_too_large", 413, f"the body is larger than {self.max_body_bytes} bytes")
        return self.check(request.method, request.raw_path, request.headers, bytes(body))


SIGNED_REQUEST = web.RequestKey("ftm_signed_request", VerifiedRequest)


def signed_request_middleware(verifier: RequestVerifier, applies: Callable[[web.Request], bool]) -> Middleware:
    """Verify every request `applies` selects; handlers read `request[SIGNED_REQUEST]` (its body included).

    A refusal answers `{"error": {"code", "message"}}` with the error's status, the node's error body shape.
    """

    @web.middleware
    async def verify_signed_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        if applies(request):
            try:
                request[SIGNED_REQUEST] = await verifier.verify(request)
            except SignedRequestError as error:
                body = {"error": {"code": error.code, "message": error.message}}
                return web.json_response(body, status=error.status)
        return await handler(request)

    return verify_signed_request
