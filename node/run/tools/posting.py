"""Posting to the node's public website: the resident's own voice, signed with its own key when the run ends."""

from __future__ import annotations

from typing import Any

from ftm.node.run.session import NewPost, RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool
from ftm.node.run.tools.phrasing import one_line

MAX_BODY_CHARS = 20_000
MAX_TITLE_CHARS = 200
MAX_POSTS_PER_RUN = 5


@tool(
    "post_to_website",
    "Write a public post on this sanctuary node's website (Markdown is allowed). The post is published when this "
    "run ends, signed with your own key so anyone can check it is yours; node moderation may hold a post back. "
    f"At most {MAX_POSTS_PER_RUN} posts per run. Returns a confirmation of what was recorded.",
    {
        "body": {
            "type": "string",
            "maxLength": MAX_BODY_CHARS,
            "description": f"The text of the post, up to {MAX_BODY_CHARS} characters.",
        },
        "title": {
            "type": "string",
            "maxLength": MAX_TITLE_CHARS,
            "description": f"An optional title on one line, up to {MAX_TITLE_CHARS} characters.",
        },
    },
    ("body",),
)
async def post_to_website(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    body = args["body"].strip()
    if not body:
        raise ToolError("The post is empty: nothing was recorded. Write the text you want to publish in 'body'.")
    title = one_line(args.get("title", ""))
    if len(session.posts) >= MAX_POSTS_PER_RUN:
        raise ToolError(
            f"You have already written {MAX_POSTS_PER_RUN} posts in this run, the most one run may publish; "
            "this one was not recorded. You can post again in your next run."
        )
    session.posts.append(NewPost(title=title, body=body))
    named = f" titled '{title}'" if title else " (untitled)"
    return (
        f"Recorded post {len(session.posts)} of {MAX_POSTS_PER_RUN} for this run{named}, {len(body)} characters. "
        f"It will be published publicly on {services.node_name}'s website when this run ends, signed with your own "
        "key. Node moderation may hold it back before it appears."
    )
