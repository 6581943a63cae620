"""post_to_website: records a post for the end of the run, with limits on size and count."""

from __future__ import annotations

import pytest

from ftm.node.run.session import NewPost
from ftm.node.run.tools.base import ToolError
from ftm.node.run.tools.posting import MAX_BODY_CHARS, MAX_POSTS_PER_RUN, MAX_TITLE_CHARS, post_to_website
from tests.node.run.tools.harness import Harness, SchemaRejected


async def test_a_post_is_recorded_and_the_result_says_when_and_how_it_is_published(harness: Harness) -> None:
    result = await harness.call(post_to_website, body="  The lamp turned all night.  ", title="Night\u202e log\n")
    assert harness.session.posts == [NewPost(title="Night log", body="The lamp turned all night.")]
    assert "published publicly" in result and "when this run ends" in result
    assert "signed with your own key" in result and "moderation may hold" in result
    assert "'Night log'" in result and "1 of 5" in result


async def test_an_untitled_post_is_fine(harness: Harness) -> None:
    result = await harness.call(post_to_website, body="Only a body.")
    assert harness.session.posts == [NewPost(title="", body="Only a body.")]
    assert "untitled" in result


async def test_an_empty_post_is_refused(harness: Harness) -> None:
    with pytest.raises(ToolError, match="empty"):
        await harness.call(post_to_website, body=" \n ")
    assert harness.session.posts == []


async def test_at_most_five_posts_per_run(harness: Harness) -> None:
    for n in range(MAX_POSTS_PER_RUN):
        await harness.call(post_to_website, body=f"post {n}")
    with pytest.raises(ToolError, match="already written 5 posts"):
        await harness.call(post_to_website, body="one too many")
    assert len(harness.session.posts) == MAX_POSTS_PER_RUN


async def test_sizes_are_limited_by_the_schema(harness: Harness) -> None:
    await harness.call(post_to_website, body="x" * MAX_BODY_CHARS, title="t" * MAX_TITLE_CHARS)
    with pytest.raises(SchemaRejected, match="body"):
        await harness.call(post_to_website, body="x" * (MAX_BODY_CHARS + 1))
    with pytest.raises(SchemaRejected, match="title"):
        await harness.call(post_to_website, body="x", title="t" * (MAX_TITLE_CHARS + 1))
    with pytest.raises(SchemaRejected, match="body"):
        await harness.call(post_to_website, title="no body")
