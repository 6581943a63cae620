"""Peer discovery behind one small interface: what a node advertises, the hints it finds, and an in-memory fake.

A `Discovery` advertises this node (`advertise` / `withdraw`) and yields `PeerHint`s: a public key and a base URL
where that node says its signed descriptor can be fetched. A hint is never trusted as it stands: whoever consumes
it fetches the descriptor from the URL and verifies its signature against the hinted key before using the peer.
Discovery only saves an operator from typing peer URLs.

Implementations: `ftm.federation.mdns.ZeroconfDiscovery` (zeroconf on the local network) and `MemoryDiscovery`
here, which joins a `MemoryLan` shared in one process, so callers are tested without multicast.

The TXT codec for the mDNS records lives here too, beside the types it encodes, so it is tested without sockets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from ftm.federation.identity import derive_id

log = logging.getLogger(__name__)

SERVICE_TYPE = "_ftm._tcp.local."
TXT_VERSION = "1"
PUBLIC_KEY_BYTES = 32
MAX_URL_CHARS = 200  # a TXT string is at most 255 bytes with its key; keep the record well inside one packet
HINT_QUEUE = 64  # hints waiting for the consumer; beyond it the newest are dropped (counted), `known()` still has them
MAX_KNOWN = 256  # peers remembered at once; a LAN announcing more than this gets the first ones only


class DiscoveryError(Exception):
    """Advertising failed (for mDNS: another host already claims this node's service name)."""


class BadAdvert(ValueError):
    """A discovered record does not decode; `reason` is a short, stable word for counting."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Advert:
    """What this node advertises: its key, the base URL of its descriptor, and the TCP port it listens on."""

    public_key: bytes
    url: str
    port: int

    def __post_init__(self) -> None:
        check_public_key(self.public_key)
        check_url(self.url)
        if not 0 < self.port < 65536:
            raise ValueError("an advertised port is between 1 and 65535")

    @property
    def node_id(self) -> str:
        return derive_id("node", self.public_key)


@dataclass(frozen=True, slots=True)
class PeerHint:
    """An unverified pointer to a peer: fetch its signed descriptor from `url` and check it against `public_key`."""

    public_key: bytes
    url: str
    source: str  # "mdns" or "memory": where the hint came from, for logs and counters

    @property
    def node_id(self) -> str:
        return derive_id("node", self.public_key)


class Discovery(Protocol):
    """Finds peers and makes this node findable. `start` before the rest; `close` once, at shutdown."""

    async def start(self) -> None: ...

    async def advertise(self, advert: Advert) -> None:
        """Make this node findable (again, with new details, if it already was)."""
        ...

    async def withdraw(self) -> None:
        """Stop being findable (say goodbye where the medium allows); finding peers goes on."""
        ...

    def hints(self) -> AsyncIterator[PeerHint]:
        """New or changed peers as they are found, for one consumer; ends after `close`."""
        ...

    def known(self) -> tuple[PeerHint, ...]:
        """Every peer currently advertised, as last seen."""
        ...

    async def close(self) -> None: ...


def check_public_key(public_key: bytes) -> None:
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"a node public key is {PUBLIC_KEY_BYTES} bytes")


def check_url(url: str) -> None:
    """A base URL fit to advertise and to fetch from: http(s), a host, nothing that could smuggle credentials."""
    if len(url) > MAX_URL_CHARS or not url.isascii() or not url.isprintable():
        raise ValueError(f"an advertised URL is printable ASCII of at most {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an advertised URL is http or https with a host")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError("an advertised URL has no user, query or fragment")


def encode_txt(advert: Advert) -> dict[str, str]:
    """The TXT record of an advert: format version, node id, public key (base64url, unpadded) and base URL."""
    key = base64.urlsafe_b64encode(advert.public_key).rstrip(b"=").decode("ascii")
    return {"v": TXT_VERSION, "id": advert.node_id, "pk": key, "url": advert.url}


def decode_txt(properties: Mapping[bytes, bytes | None], source: str) -> PeerHint:
    """A hint from a TXT record as zeroconf parses it; `BadAdvert` for anything malformed or of another version.

    Unknown keys are ignored so later versions can add some; the id must be the one derived from the key, which
    costs nothing and drops garbage early (it proves nothing: the signed descriptor does that).
    """
    fields: dict[str, str] = {}
    for raw_key, raw_value in properties.items():
        if raw_value is None:
            continue
        try:
            fields[raw_key.decode("ascii")] = raw_value.decode("ascii")
        except UnicodeDecodeError:
            raise BadAdvert("not-ascii") from None
    if fields.get("v") != TXT_VERSION:
        raise BadAdvert("version")
    encoded_key = fields.get("pk", "")
    try:
        public_key = base64.urlsafe_b64decode(encoded_key + "=" * (-len(encoded_key) % 4))
    except (binascii.Error, ValueError):
        raise BadAdvert("public-key") from None
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise BadAdvert("public-key")
    if fields.get("id") != derive_id("node", public_key):
        raise BadAdvert("node-id")
    url = fields.get("url", "")
    try:
        check_url(url)
    except ValueError:
        raise BadAdvert("url") from None
    return PeerHint(public_key=public_key, url=url, source=source)


class HintBox:
    """What a discovery has found: the peers advertised now, and a bounded queue of news for the consumer.

    Shared by the implementations so they dedupe, bound and ignore their own node the same way. Loop-bound: call
    it from the event loop only.
    """

    def __init__(self, *, max_known: int = MAX_KNOWN, queue_size: int = HINT_QUEUE) -> None:
        self._known: dict[str, PeerHint] = {}  # by a name unique to the medium (the mDNS instance name)
        self._queue: asyncio.Queue[PeerHint | None] = asyncio.Queue(queue_size)
        self._max_known = max_known
        self._own_key: bytes | None = None
        self._closed = False
        self.counts: Counter[str] = Counter()  # accepted, dropped:<why>, rejected:<why>

    def ignore_own(self, public_key: bytes | None) -> None:
        """Hints carrying this key are our own advert coming back, never a peer."""
        self._own_key = public_key

    def offer(self, name: str, hint: PeerHint) -> None:
        if self._closed or hint.public_key == self._own_key:
            return
        if self._known.get(name) == hint:
            return  # re-announcements of what we already know are not news
        if name not in self._known and len(self._known) >= self._max_known:
            self.counts["dropped:too-many"] += 1
            return
        self._known[name] = hint
        self.counts["accepted"] += 1
        try:
            self._queue.put_nowait(hint)
        except asyncio.QueueFull:
            # The consumer is behind; it can catch up from `known()`, which has this hint.
            self.counts["dropped:queue-full"] += 1

    def reject(self, reason: str) -> None:
        self.counts[f"rejected:{reason}"] += 1

    def forget(self, name: str) -> None:
        self._known.pop(name, None)

    def known(self) -> tuple[PeerHint, ...]:
        return tuple(self._known.values())

    async def stream(self) -> AsyncIterator[PeerHint]:
        while (hint := await self._queue.get()) is not None:
            yield hint

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._queue.full():  # the end-of-stream marker must fit; the oldest news gives way
            self._queue.get_nowait()
            self.counts["dropped:queue-full"] += 1
        self._queue.put_nowait(None)


class MemoryLan:
    """An in-process stand-in for one local network: every `MemoryDiscovery` on it sees the others' adverts."""

    def __init__(self) -> None:
        self._members: list[MemoryDiscovery] = []
        self._adverts: dict[str, Advert] = {}  # by node id, as mDNS instance names are

    def _join(self, member: MemoryDiscovery) -> None:
        self._members.append(member)
        for advert in self._adverts.values():
            member._seen(advert)

    def _leave(self, member: MemoryDiscovery) -> None:
        self._members.remove(member)

    def _announce(self, advert: Advert) -> None:
        self._adverts[advert.node_id] = advert
        for member in self._members:
            member._seen(advert)

    def _goodbye(self, node_id: str) -> None:
        self._adverts.pop(node_id, None)
        for member in self._members:
            member._gone(node_id)


class MemoryDiscovery:
    """`Discovery` over a `MemoryLan`: no sockets, immediate, for tests of whatever consumes hints."""

    def __init__(self, lan: MemoryLan) -> None:
        self._lan = lan
        self._box = HintBox()
        self._advert: Advert | None = None
        self._started = False

    @property
    def counts(self) -> Counter[str]:
        return self._box.counts

    async def start(self) -> None:
        if not self._started:
            self._started = True
            self._lan._join(self)

    async def advertise(self, advert: Advert) -> None:
        if self._advert is not None and self._advert.node_id != advert.node_id:
            await self.withdraw()
        self._advert = advert
        self._box.ignore_own(advert.public_key)
        self._lan._announce(advert)

    async def withdraw(self) -> None:
        if self._advert is not None:
            self._lan._goodbye(self._advert.node_id)
            self._advert = None

    def hints(self) -> AsyncIterator[PeerHint]:
        return self._box.stream()

    def known(self) -> tuple[PeerHint, ...]:
        return self._box.known()

    async def close(self) -> None:
        await self.withdraw()
        if self._started:
            self._started = False
            self._lan._leave(self)
        self._box.close()

    def _seen(self, advert: Advert) -> None:
        # Through the TXT codec, so the fake hands out exactly what the real medium would.
        properties = {k.encode(): v.encode() for k, v in encode_txt(advert).items()}
        self._box.offer(advert.node_id, decode_txt(properties, "memory"))

    def _gone(self, node_id: str) -> None:
        self._box.forget(node_id)
