"""A restored resident's published posts, back from the federation (docs/custody.md, "Restore", step 6).

Posts are not in the persona package: they are public POST events signed by the resident's own key, and every
node the old host gossiped with keeps them. So a restore first reconciles with this node's federation peers
(`fetch_from_peers`, bounded in time, best effort), then, while the resident's key is in memory, turns every POST
event by that key the object store holds into a post made here (`recovered_posts`): the event as it was signed
(its id stays the post's id everywhere) and the post signature the API publishes beside it, made again with the
resident's key (Ed25519 is deterministic: the very bytes the old host published). Acceptance verified each
event's signature and author when it was stored; its content must also name this resident.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ftm.federation.eventcontent import PostContent, decode_content
from ftm.federation.events import EventError, EventKind
from ftm.node.run.publish import sign_post
from ftm.node.store.posts import PostEvent, PostRecord
from ftm.node.store.restores import StoredPostEvent

log = logging.getLogger(__name__)

MAX_RECOVERED_POSTS = 10_000  # a resident's posts over years of daily runs, with room to spare
SYNC_SECONDS = 120.0  # the whole reconciliation with every peer, before the restore goes on without it


async def fetch_from_peers(sync: Callable[[], Awaitable[object]], seconds: float = SYNC_SECONDS) -> bool:
    """Reconcile with the federation's peers once (`sync`), so that the object store holds what they hold;
    whether it finished. A restore goes on without it: the posts are then those the store already had."""
    try:
        await asyncio.wait_for(sync(), seconds)
    except (TimeoutError, OSError, RuntimeError) as error:
        log.warning("federation peers not reconciled before the restore", extra={"error": type(error).__name__})
        return False
    return True


async def recovered_posts(
    events: Sequence[StoredPostEvent], resident_id: str, signing_seed: bytes
) -> list[tuple[PostRecord, PostEvent]]:
    """The resident's posts from its POST events (their signatures and authors already verified by acceptance):
    each with the post signature made again with its key. Off the event loop: one signature a post."""
    return await asyncio.to_thread(_recover, events, resident_id, signing_seed)


def _recover(
    events: Sequence[StoredPostEvent], resident_id: str, signing_seed: bytes
) -> list[tuple[PostRecord, PostEvent]]:
    posts = []
    for event in events:
        try:
            content = decode_content(EventKind.POST, event.content)
        except EventError:
            continue
        if not isinstance(content, PostContent) or content.resident_id != resident_id:
            continue  # signed by its key, but not about it: nothing to show as its post
        _, signature = sign_post(signing_seed, resident_id, event.created_at, content.title, content.markdown)
        post = PostRecord(event.id.hex(), resident_id, event.created_at, content.title, content.markdown, signature)
        posts.append((post, PostEvent(event.body, event.signature, content.resident_name)))
    return posts
