"""The message formats of the node-to-node HTTP API (`/federation/v1/`): what each route's body and answer hold.

Every message is a frozen dataclass encoded with the strict codec (a msgpack map of its field names, in field
order) and sent as `CONTENT_TYPE`; the reconciliation route alone carries the raw reconciliation bytes of
`reconcilewire` as `RECONCILE_CONTENT_TYPE`. Two answers are signed by the answering node, because they are
believed beyond the request that fetched them: the hello answer (it pins a URL's key) and the peer list (it names
other nodes). Both are signed over their exact bytes: the answer carries the encoded inner message and a signature
over it, so nothing is re-encoded before checking. docs/federation.md is the specification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from ftm.federation import codec
from ftm.federation.discovery import check_url
from ftm.federation.events import MAX_BATCH_EVENTS, SignedEvent
from ftm.federation.identity import BadSignature, SigningKey, verify

CONTENT_TYPE = "application/vnd.ftm.federation.v1+msgpack"
RECONCILE_CONTENT_TYPE = "application/vnd.ftm.reconcile.v1"
PROTOCOL_VERSION = 1
HELLO_DOMAIN = "ftm-node-hello-v1"
PEER_LIST_DOMAIN = "ftm-peer-list-v1"
CHALLENGE_BYTES = 16
KEY_BYTES = 32
ID_BYTES = 32
MAX_IDS = MAX_BATCH_EVENTS  # ids in one ihave or fetch
MAX_HOPS = 255
MAX_PEER_ENTRIES = 64
LINK_CHANGES = ("", "join", "leave")
MAX_MESSAGE_BYTES = 256 * 1024  # every message but a batch of events
MAX_PUSH_BYTES = 4 * 1024 * 1024  # a push: what a receiver reads, and what a sender fills a batch up to
MAX_FETCH_ANSWER_BYTES = 16 * 1024 * 1024  # events.MAX_BATCH_BYTES: a fetch answer may carry up to MAX_IDS events

API_PREFIX = "/federation/v1/"  # where the node mounts routes.py's sub-application
PATH_HELLO = "hello"
PATH_INTRODUCE = "introduce"
PATH_EVENTS = "events"
PATH_IHAVE = "ihave"
PATH_FETCH = "fetch"
PATH_RECONCILE = "reconcile"
PATH_PEERS = "peers"

M = TypeVar("M")


class WireError(ValueError):
    """A message that is malformed, too large, or fails its own rules; `code` is stable (`malformed_body`…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Hello:
    """Who answers at a URL: signed over the challenge the asker chose, so an answer cannot be replayed."""

    version: int
    node_key: bytes
    url: str
    time: int
    challenge: bytes


@dataclass(frozen=True, slots=True)
class SignedHello:
    hello: bytes  # the codec encoding of a `Hello`
    signature: bytes  # by `node_key`, domain HELLO_DOMAIN, over `hello`


@dataclass(frozen=True, slots=True)
class Introduce:
    """The signer says it answers at `url`; the receiver checks that by asking `url` for a hello."""

    url: str


@dataclass(frozen=True, slots=True)
class IntroduceAnswer:
    verified: bool  # False: the receiver keeps us as a candidate and checks later


@dataclass(frozen=True, slots=True)
class Push:
    """Events sent unasked (gossip, or the `have` side of reconciliation). `hops[i]` is how many hops event i
    travelled to reach the sender (0: the sender made it). `sent_to` names other nodes the sender pushed every one
    of these events to, so the receiver does not announce them there."""

    events: tuple[SignedEvent, ...]
    hops: tuple[int, ...]
    sent_to: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class PushAnswer:
    answers: tuple[str, ...]  # one acceptance answer per event, in order: ok | duplicate | invalid:<why> | …


@dataclass(frozen=True, slots=True)
class IHave:
    """Ids of events the sender has; the receiver fetches those it lacks. `link` is "" or a change to gossip's
    active view: "join" (the sender picked the receiver) or "leave" (it no longer does)."""

    ids: tuple[bytes, ...]
    link: str


@dataclass(frozen=True, slots=True)
class Fetch:
    """Ask for events by id (announced ones, or reconciliation's `need`)."""

    ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Events:
    """A fetch answer: the events asked for that the answerer has, with their hop counts there."""

    events: tuple[SignedEvent, ...]
    hops: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PeerEntry:
    node_key: bytes
    url: str
    last_success: int  # when the list's signer last talked to this peer successfully (Unix seconds)


@dataclass(frozen=True, slots=True)
class PeerList:
    version: int
    signer: bytes
    audience: bytes  # the node that asked: a list cannot be passed off to a third node as meant for it
    created_at: int
    peers: tuple[PeerEntry, ...]


@dataclass(frozen=True, slots=True)
class SignedPeerList:
    peer_list: bytes  # the codec encoding of a `PeerList`
    signature: bytes  # by `signer`, domain PEER_LIST_DOMAIN, over `peer_list`


def decode(cls: type[M], data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> M:
    """Strictly decode one message; `WireError("malformed_body")` for anything that is not exactly `cls`."""
    if len(data) > max_bytes:
        raise WireError("body_too_large", f"the message is larger than {max_bytes} bytes")
    try:
        message = codec.decode(cls, data, max_bytes=max_bytes)
    except codec.DecodeError as error:
        raise WireError("malformed_body", str(error)) from None
    check(message)
    return message


def check(message: object) -> None:
    """The rules each message carries beyond its types: lengths, counts and ranges."""
    if isinstance(message, Push | Events):
        items = message.events
        if len(items) > MAX_IDS or len(message.hops) != len(items):
            raise WireError("malformed_body", f"at most {MAX_IDS} items, each with a hop count")
        if any(not 0 <= hops <= MAX_HOPS for hops in message.hops):
            raise WireError("malformed_body", f"a hop count is outside 0..{MAX_HOPS}")
    if isinstance(message, IHave | Fetch) and (
        len(message.ids) > MAX_IDS or any(len(event_id) != ID_BYTES for event_id in message.ids)
    ):
        raise WireError("malformed_body", f"at most {MAX_IDS} ids of {ID_BYTES} bytes")
    if isinstance(message, Push) and (
        len(message.sent_to) > MAX_PEER_ENTRIES or any(len(key) != KEY_BYTES for key in message.sent_to)
    ):
        raise WireError("malformed_body", f"sent_to names at most {MAX_PEER_ENTRIES} keys of {KEY_BYTES} bytes")
    if isinstance(message, IHave) and message.link not in LINK_CHANGES:
        raise WireError("malformed_body", "link is one of '', 'join', 'leave'")
    if isinstance(message, Introduce):
        _check_url(message.url)


def _check_url(url: str) -> None:
    try:
        check_url(url)
    except ValueError as error:
        raise WireError("bad_url", str(error)) from None


def sign_hello(key: SigningKey, url: str, time: int, challenge: bytes) -> SignedHello:
    encoded = codec.encode(Hello(PROTOCOL_VERSION, key.public_key, url, time, challenge))
    return SignedHello(encoded, key.sign(HELLO_DOMAIN, encoded))


def open_hello(signed: SignedHello, challenge: bytes) -> Hello:
    """The hello inside, once its signature and challenge are checked; raises WireError."""
    hello = decode(Hello, signed.hello)
    if hello.version != PROTOCOL_VERSION:
        raise WireError("unsupported_version", f"hello version {hello.version} is not supported")
    if len(hello.node_key) != KEY_BYTES or hello.challenge != challenge:
        raise WireError("bad_hello", "the hello does not answer our challenge")
    _check_url(hello.url)
    try:
        verify(hello.node_key, HELLO_DOMAIN, signed.hello, signed.signature)
    except BadSignature:
        raise WireError("bad_signature", "the hello's signature does not verify") from None
    return hello


def sign_peer_list(key: SigningKey, audience: bytes, created_at: int, peers: tuple[PeerEntry, ...]) -> SignedPeerList:
    encoded = codec.encode(PeerList(PROTOCOL_VERSION, key.public_key, audience, created_at, peers[:MAX_PEER_ENTRIES]))
    return SignedPeerList(encoded, key.sign(PEER_LIST_DOMAIN, encoded))


def open_peer_list(signed: SignedPeerList, signer: bytes, audience: bytes, now: float, window: float) -> PeerList:
    """The list inside, checked: signed by `signer` for `audience` within `window` seconds of `now`; entries
    with malformed keys or URLs are dropped (one bad entry does not spoil the rest)."""
    peer_list = decode(PeerList, signed.peer_list)
    if peer_list.version != PROTOCOL_VERSION:
        raise WireError("unsupported_version", f"peer list version {peer_list.version} is not supported")
    if peer_list.signer != signer or peer_list.audience != audience:
        raise WireError("bad_peer_list", "the peer list is not from that peer, or not for us")
    if abs(now - peer_list.created_at) > window:
        raise WireError("bad_peer_list", "the peer list is stale")
    if len(peer_list.peers) > MAX_PEER_ENTRIES:
        raise WireError("malformed_body", f"a peer list has at most {MAX_PEER_ENTRIES} entries")
    try:
        verify(signer, PEER_LIST_DOMAIN, signed.peer_list, signed.signature)
    except BadSignature:
        raise WireError("bad_signature", "the peer list's signature does not verify") from None
    kept = []
    for entry in peer_list.peers:
        try:
            check_url(entry.url)
        except ValueError:
            continue
        if len(entry.node_key) == KEY_BYTES and entry.node_key not in (signer, audience):
            kept.append(entry)
    return PeerList(peer_list.version, peer_list.signer, peer_list.audience, peer_list.created_at, tuple(kept))
