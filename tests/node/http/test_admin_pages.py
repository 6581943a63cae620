"""The operator's moderation page on the admin listener, on a real node: sign-in with the admin token, the session
cookie, CSRF and origin checks, release and reject end to end into the public event log, hostile posts escaped."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries, verify_chain
from ftm.node.app import Node
from ftm.webui.admin import SESSION_COOKIE, SESSION_SECONDS, reason_text
from ftm.webui.security import CONTENT_SECURITY_POLICY
from tests.node.http.test_admin_moderation import admin_client, held_post
from tests.node.http.test_posts_and_replies import admit
from tests.webui.markup import Markup

Client = TestClient  # type: ignore[type-arg]
HOSTILE = (
    "<script>window.__pwned=1</script>\n\n"
    '<img src=x onerror="window.__pwned=1">\n\n'
    "[x](javascript:window.__pwned=1)\n\n"
    "**bold** and a <form action=https://evil.example><button>go</button></form>"
)


async def csrf_for(admin: Client, page: str, action: str) -> str:
    html = await (await admin.get(page)).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', html[html.index(f'action="{action}"') :])
    assert match is not None, html[:400]
    return match.group(1)


async def sign_in(admin: Client, token: str) -> None:
    csrf = await csrf_for(admin, "/admin/sign-in", "/admin/sign-in")
    response = await admin.post(
        "/admin/sign-in", data={"admin_token": token, "csrf_token": csrf}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/admin/moderation"


async def test_sign_in_refuses_a_wrong_token_and_sets_a_scoped_cookie_for_the_right_one(
    node: Node, aiohttp_client: AiohttpClient
) -> None:
    admin = await admin_client(node, aiohttp_client)
    away = await admin.get("/admin/moderation", allow_redirects=False)
    assert away.status == 303 and away.headers["Location"] == "/admin/sign-in"
    assert (await admin.get("/admin", allow_redirects=False)).headers["Location"] == "/admin/sign-in"

    form = await admin.get("/admin/sign-in")
    html = await form.text()
    assert form.status == 200 and "Admin token" in html and Markup(html).live_problems() == []
    assert form.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert form.headers["X-Frame-Options"] == "DENY" and form.headers["Cache-Control"] == "no-store"
    assert "/static/" in html and "css/admin.css" in html

    no_csrf = await admin.post("/admin/sign-in", data={"admin_token": node.admin_token}, allow_redirects=False)
    assert no_csrf.status == 403 and SESSION_COOKIE not in no_csrf.cookies

    csrf = await csrf_for(admin, "/admin/sign-in", "/admin/sign-in")
    for wrong in ("", "wrong", node.admin_token[:-1], node.admin_token + "x"):
        refused = await admin.post("/admin/sign-in", data={"admin_token": wrong, "csrf_token": csrf})
        assert refused.status == 401 and "not this node&#39;s admin token" in await refused.text()
        assert SESSION_COOKIE not in refused.cookies
    assert (await admin.get("/admin/moderation", allow_redirects=False)).status == 303

    signed = await admin.post(
        "/admin/sign-in", data={"admin_token": node.admin_token, "csrf_token": csrf}, allow_redirects=False
    )
    assert signed.status == 303
    cookie = next(c for c in signed.headers.getall("Set-Cookie") if c.startswith(SESSION_COOKIE + "="))
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert "httponly" in attributes and attributes["samesite"] == "SameSite=Strict"
    assert attributes["path"] == "Path=/admin"
    assert node.admin_token not in cookie  # the session value, never the token itself
    page = await admin.get("/admin/moderation")
    assert page.status == 200 and "Held posts" in await page.text()

    # The API still wants its bearer token: the session cookie opens the pages only.
    assert (await admin.get("/admin/v1/moderation")).status == 401


async def test_release_and_reject_end_to_end_with_hostile_content_escaped(
    client: Client, node: Node, aiohttp_client: AiohttpClient
) -> None:
    resident = (await admit(client, "Lumen"))["sanctuary_id"]
    hostile = await held_post(node, resident, 100, HOSTILE)
    plain = await held_post(node, resident, 200, "The lamp is lit.")
    admin = await admin_client(node, aiohttp_client)
    await sign_in(admin, node.admin_token)

    html = await (await admin.get("/admin/moderation")).text()
    assert "2 posts waiting" in html and "Lumen" in html
    assert Markup(html).live_problems() == []
    assert "<script>" not in html and "<strong>bold</strong>" in html  # Markdown rendered, HTML escaped
    forms = [attrs["action"] for tag, attrs in Markup(html).tags if tag == "form"]
    assert forms == ["/admin/sign-out", "/admin/moderation/decide", "/admin/moderation/decide"]  # none from a post

    csrf = await csrf_for(admin, "/admin/moderation", "/admin/moderation/decide")
    missing = await admin.post("/admin/moderation/decide", data={"post_id": hostile, "decision": "release"})
    assert missing.status == 403
    foreign = await admin.post(
        "/admin/moderation/decide",
        data={"post_id": hostile, "decision": "release", "csrf_token": csrf},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status == 403
    other_form = await csrf_for(admin, "/admin/moderation", "/admin/sign-out")
    assert (
        await admin.post(
            "/admin/moderation/decide", data={"post_id": hostile, "decision": "release", "csrf_token": other_form}
        )
    ).status == 403
    assert {p.id for p in await node.moderation.held()} == {hostile, plain}  # nothing was decided

    released = await admin.post(
        "/admin/moderation/decide",
        data={"post_id": plain, "decision": "release", "reason": "", "csrf_token": csrf},
        allow_redirects=False,
    )
    assert released.status == 303 and released.headers["Location"] == f"/admin/moderation?released={plain}"
    page = await admin.get(released.headers["Location"])
    assert "released, and recorded in the event log" in await page.text()

    rejected = await admin.post(
        "/admin/moderation/decide",
        data={"post_id": hostile, "decision": "reject", "reason": "spam", "csrf_token": csrf},
    )
    assert rejected.status == 200 and "rejected, and recorded" in (text := await rejected.text())
    assert "0 posts waiting" in text and "Nothing is waiting" in text

    again = await admin.post(
        "/admin/moderation/decide", data={"post_id": plain, "decision": "release", "csrf_token": csrf}
    )
    assert again.status == 409 and "The post is already published." in await again.text()
    unknown = await admin.post(
        "/admin/moderation/decide", data={"post_id": "0" * 32, "decision": "release", "csrf_token": csrf}
    )
    assert unknown.status == 404 and "No post with that id" in await unknown.text()
    bad = await admin.post(
        "/admin/moderation/decide",
        data={"post_id": "0" * 32, "decision": "publish-everything", "csrf_token": csrf},
    )
    assert bad.status == 400

    feed: dict[str, Any] = await (await client.get("/api/v1/feed")).json()
    assert [p["body"] for p in feed["posts"]] == ["The lamp is lit."]
    entries = [(e.kind, e.subject, e.data) for e in await read_entries(node.db) if e.kind.startswith("post_")]
    assert entries == [
        ("post_approved", resident, {"post": plain, "reason": "operator", "was": "held"}),
        ("post_removed", resident, {"post": hostile, "reason": "spam", "was": "held"}),
    ]
    assert (await verify_chain(node.db, node.identity.public_key)).valid
    public_log: dict[str, Any] = await (await client.get("/api/v1/transparency/log")).json()
    assert {"post_approved", "post_removed"} <= {e["kind"] for e in public_log["entries"]}


async def test_sign_out_and_expiry_end_the_session(node: Node, clock: FakeClock, aiohttp_client: AiohttpClient) -> None:
    admin = await admin_client(node, aiohttp_client)
    await sign_in(admin, node.admin_token)
    csrf = await csrf_for(admin, "/admin/moderation", "/admin/sign-out")
    out = await admin.post("/admin/sign-out", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/admin/sign-in"
    assert (await admin.get("/admin/moderation", allow_redirects=False)).status == 303

    await sign_in(admin, node.admin_token)
    assert (await admin.get("/admin/moderation", allow_redirects=False)).status == 200
    clock.advance(SESSION_SECONDS + 1)
    assert (await admin.get("/admin/moderation", allow_redirects=False)).status == 303
    # A decision without a session goes to the sign-in page and decides nothing.
    assert (await admin.post("/admin/moderation/decide", allow_redirects=False)).status == 303


async def test_the_listener_serves_the_site_styles_and_answers_unknown_pages_with_a_page(
    node: Node, aiohttp_client: AiohttpClient
) -> None:
    admin = await admin_client(node, aiohttp_client)
    html = await (await admin.get("/admin/sign-in")).text()
    stylesheet = re.search(r'href="(/static/[^"]+/css/site\.css)"', html)
    assert stylesheet is not None
    css = await admin.get(stylesheet.group(1))
    assert css.status == 200 and "--cyan" in await css.text()
    missing = await admin.get("/admin/nothing-here")
    assert missing.status == 404 and missing.content_type == "text/html"
    api_missing = await admin.get("/admin/v1/nothing", headers={"Authorization": f"Bearer {node.admin_token}"})
    assert api_missing.status == 404 and api_missing.content_type == "application/json"


def test_reason_codes_read_as_words() -> None:
    assert reason_text("rules.hold_pattern:2") == "Matched hold pattern 2 (moderation.hold_patterns)"
    assert reason_text("provider.flagged:hate,violence") == "Flagged by the moderation provider: hate, violence"
    assert reason_text("provider.unavailable:timeout") == "Provider moderation unavailable (timeout): held unchecked"
    assert reason_text("something.new") == "something.new"
