"""Pairing a keeper with a host node, from the keeper's side (docs/custody.md, "Pairing"; docs/keeper.md).

1. **Learn the node's key**: `GET <node>/federation/v1/hello?challenge=…`, the federation hello every node
   answers with a signature over our fresh challenge (`ftm.federation.gossipwire`). Whoever answers at the URL
   now is who we pin: the same trust on first use as a node's bootstrap peers.
2. **Enrol**: `POST <node>/api/v1/keepers/replica` with `Enrol {keeper_url, token}`, a signed request from the
   keeper's key whose audience is that node key; the node answers `EnrolAnswer {node_key, node_url, keeper_id}`,
   and its key must be the one the hello gave.

Failures raise `EnrolmentError` with a message for the operator (unreachable, refused with the node's code, an
answer that does not check out); nothing is recorded by this module: the caller pins the host.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

import aiohttp
from yarl import URL

from ftm.federation import gossipwire
from ftm.federation.clock import Clock
from ftm.federation.identity import SigningKey
from ftm.federation.signedrequests import RequestSigner, b64url
from ftm.keeper.protocol import CONTENT_TYPE, ENROL_PATH, Enrol, EnrolAnswer, WireError, decode, encode

TIMEOUT_SECONDS = 20
MAX_ANSWER_BYTES = 64 * 1024


class EnrolmentError(Exception):
    """Pairing did not happen; the message says why, for the operator."""


@dataclass(frozen=True, slots=True)
class NodeHello:
    node_key: bytes
    url: str  # the URL the node says it answers at


def _base(url: str) -> str:
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise EnrolmentError(f"{url} is not a node's base URL (http:// or https://)")
    return url.rstrip("/")


async def fetch_hello(session: aiohttp.ClientSession, node_url: str) -> NodeHello:
    """Who answers at `node_url`: its key, from a hello signed over a fresh challenge."""
    base = _base(node_url)
    challenge = secrets.token_bytes(gossipwire.CHALLENGE_BYTES)
    target = f"{base}{gossipwire.API_PREFIX}{gossipwire.PATH_HELLO}?challenge={b64url(challenge)}"
    status, body = await _call(session, "GET", target, b"", {})
    if status != 200:
        raise EnrolmentError(f"{base} did not answer the federation hello ({_describe(status, body)})")
    try:
        signed = gossipwire.decode(gossipwire.SignedHello, body)
        hello = gossipwire.open_hello(signed, challenge)
    except WireError as error:
        raise EnrolmentError(
            f"{base} answered the hello with something that does not check out ({error.code})"
        ) from None
    return NodeHello(hello.node_key, hello.url)


async def enrol(
    session: aiohttp.ClientSession, key: SigningKey, clock: Clock, node_url: str, keeper_url: str, token: str
) -> EnrolAnswer:
    """Enrol at the node at `node_url` with the Keeper registration's `token`; the node's answer, checked."""
    hello = await fetch_hello(session, node_url)
    base = _base(node_url)
    body = encode(Enrol(keeper_url, token))
    url = URL(base + ENROL_PATH)
    headers = RequestSigner(key, clock).headers("POST", url, body, hello.node_key)
    status, answer_bytes = await _call(session, "POST", url, body, {**headers, "Content-Type": CONTENT_TYPE})
    if status != 200:
        raise EnrolmentError(f"{base} refused the enrolment ({_describe(status, answer_bytes)})")
    try:
        answer = decode(EnrolAnswer, answer_bytes)
    except WireError as error:
        raise EnrolmentError(f"{base} answered the enrolment with something unreadable ({error.code})") from None
    if answer.node_key != hello.node_key:
        raise EnrolmentError(f"{base} answered the enrolment with another key than its hello's")
    return answer


async def _call(
    session: aiohttp.ClientSession, method: str, url: URL | str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    try:
        async with session.request(
            method, url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
        ) as response:
            data = await response.content.read(MAX_ANSWER_BYTES + 1)
            if len(data) > MAX_ANSWER_BYTES:
                raise EnrolmentError(f"{URL(url).origin()} answered with more than {MAX_ANSWER_BYTES} bytes")
            return response.status, data
    except (aiohttp.ClientError, TimeoutError) as error:
        raise EnrolmentError(f"{URL(url).origin()} could not be reached ({type(error).__name__})") from None


def _describe(status: int, body: bytes) -> str:
    """The node's error code and message if it sent the usual error body, else just the status."""
    try:
        error = json.loads(body)["error"]
        return f"{status} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"
