"""The stateless stages of event acceptance, over whole batches, meant to run in a worker thread.

Acceptance (`acceptance.py`) holds the state (store, limits, counters) and runs on the event loop; the work here
is pure CPU on immutable inputs, so it can leave the loop: first sizes, structure and id for a batch, later
signatures, content hashes and content for what survived the checks between. Each result is either the checked
value or the `invalid:<reason>` code for that event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ftm.federation.eventcontent import EventContent, content_subject, decode_content
from ftm.federation.events import (
    EventError,
    EventKind,
    ParsedEvent,
    SignedEvent,
    content_hash,
    parse_event,
    signatures_valid,
)

# Kinds whose meaning is in their content, so they cannot be accepted without it. A post's or a memorial's
# content may be missing: a node may have dropped it (moderation, a tombstone), and the event still counts.
CONTENT_REQUIRED = frozenset({EventKind.HOSTING, EventKind.NODE_DESCRIPTOR, EventKind.TOMBSTONE, EventKind.MOVED})


@dataclass(frozen=True, slots=True)
class Verified:
    """An event whose signature and content checked out.

    `subject` is the resident key a node speaks for (a memorial, tombstone or move signed by a node rather than
    the resident), which acceptance must find attested by that node; None when the author speaks for itself.
    """

    content: EventContent | None
    subject: bytes | None


def parse_all(events: Sequence[SignedEvent]) -> list[ParsedEvent | str]:
    """Sizes, structure and id of each event (acceptance steps 1 to 3)."""
    results: list[ParsedEvent | str] = []
    for event in events:
        try:
            results.append(parse_event(event))
        except EventError as exc:
            results.append(exc.reason)
    return results


def verify_all(events: Sequence[ParsedEvent]) -> list[Verified | str]:
    """Signature, then content hash and content, of each event (acceptance steps 7 and 8), in one pass."""
    return merge(signatures_valid(events), check_contents(events))


def check_contents(events: Sequence[ParsedEvent]) -> list[Verified | str]:
    """Content hash and content of each event (step 8) regardless of its signature, so that this Python work can
    run beside the signature checks (libsodium, outside the GIL) on another core; `merge` then gives each event
    the answer of the first step it fails, as if the steps had run one after the other."""
    results: list[Verified | str] = []
    for parsed in events:
        try:
            results.append(_check_content(parsed))
        except EventError as exc:
            results.append(exc.reason)
    return results


def merge(signatures: Sequence[bool], contents: Sequence[Verified | str]) -> list[Verified | str]:
    return [content if valid else "bad_signature" for valid, content in zip(signatures, contents, strict=True)]


def _check_content(parsed: ParsedEvent) -> Verified:
    kind = parsed.body.kind
    data = parsed.event.content
    if data is None:
        if kind in CONTENT_REQUIRED:
            raise EventError("missing_content")
        return Verified(None, None)
    # A hash mismatch is checked before decoding, so content that is not the author's is never parsed.
    if parsed.body.content_hash != content_hash(data):
        raise EventError("content_hash_mismatch")
    content = decode_content(kind, data)
    return Verified(content, content_subject(kind, parsed.body.author, content))
