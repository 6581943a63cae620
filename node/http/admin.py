"""The admin listener: a separate listener on 127.0.0.1 for the operator. The API under `/admin/v1/` wants the
admin bearer token on every request:

    POST /admin/v1/runs/{sanctuary_id}   run this resident's run for today now (still at most once a day)
    GET  /admin/v1/runs/{sanctuary_id}   the resident's run ledger, one row per day
    GET  /admin/v1/status                counts and the scheduler's view of who is due
    GET  /admin/v1/moderation            posts held for review, oldest first (with their text, for the operator)
    POST /admin/v1/moderation/{post_id}/approve   publish a held post; JSON body {"reason": CODE} optional
    POST /admin/v1/moderation/{post_id}/remove    keep a post off the node's pages; same optional body

It is an adapter like the public API: it parses, calls the run engine or stores, and serialises.

The same listener serves the operator's pages (`ftm.webui.admin`: sign in with the token, then the moderation
queue with Release and Reject) and the site's static files for them. `DeskQueue` gives those pages the
`ModerationDesk` that `ftm-node moderation` uses, so a decision made in the browser is the same decision, logged
the same way.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from aiohttp import web
from aiohttp.typedefs import Handler

from ftm.federation.clock import Clock, utc_day
from ftm.node.errors import InvalidField, MalformedInput, NotFound
from ftm.node.http.api import NodeFacts
from ftm.node.http.errors import create_error_middleware, error_response
from ftm.node.moderation import OPERATOR_REASON, ModerationDesk
from ftm.node.run.engine import RunEngine
from ftm.node.run.scheduler import Scheduler
from ftm.node.store.posts import PostRecord
from ftm.node.store.residents import ResidentStore
from ftm.node.store.runs import RunLedger
from ftm.webui.admin import AdminPages, AdminSessions, HeldPost
from ftm.webui.assets import StaticFiles
from ftm.webui.rendering import Renderer
from ftm.webui.sanctuary import FormError, NodeInfo
from ftm.webui.security import Csrf, add_security_headers

API_PREFIX = "/admin/v1/"


def create_admin_app(
    *,
    token: str,
    engine: RunEngine,
    scheduler: Scheduler,
    ledger: RunLedger,
    residents: ResidentStore,
    moderation: ModerationDesk,
    clock: Clock,
    facts: NodeFacts,
) -> web.Application:
    expected = token.encode()

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)  # the pages check their own session cookie; static files are public
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip().encode()
        if not given or not hmac.compare_digest(given, expected):
            return error_response(401, "unauthorized", "the admin API needs the admin token as a Bearer header")
        return await handler(request)

    async def run_now(request: web.Request) -> web.Response:
        resident_id = request.match_info["sanctuary_id"]
        if await residents.get(resident_id) is None:
            raise NotFound("no resident with that sanctuary id lives on this node")
        outcome = await engine.run(resident_id, utc_day(clock.now()))
        return web.json_response(asdict(outcome))

    async def ledger_rows(request: web.Request) -> web.Response:
        resident_id = request.match_info["sanctuary_id"]
        if await residents.get(resident_id) is None:
            raise NotFound("no resident with that sanctuary id lives on this node")
        return web.json_response({"days": [asdict(row) for row in await ledger.days(resident_id)]})

    async def status(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "day": utc_day(clock.now()),
                "residents": await residents.counts_by_status(),
                "due_now": await scheduler.due(),
            }
        )

    async def held_posts(request: web.Request) -> web.Response:
        return web.json_response({"held": [_held_json(post) for post in await moderation.held()]})

    async def decide(request: web.Request) -> web.Response:
        post_id, action = request.match_info["post_id"], request.match_info["action"]
        reason = OPERATOR_REASON
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError as exc:
                raise MalformedInput("the request body is not JSON") from exc
            if not isinstance(body, dict) or not isinstance(body.get("reason", reason), str):
                raise InvalidField('the body must be a JSON object like {"reason": "spam"}')
            reason = body.get("reason", reason)
        post = await (moderation.approve if action == "approve" else moderation.remove)(post_id, reason)
        return web.json_response({"post_id": post.id, "moderation": post.moderation, "reason": post.moderation_reason})

    pages = _admin_pages(token, moderation, clock, facts)
    app = web.Application(middlewares=[create_error_middleware(pages.error_response), require_token])
    app.on_response_prepare.append(add_security_headers)
    app.add_routes(pages.routes())
    app.add_routes(
        [
            web.post("/admin/v1/runs/{sanctuary_id}", run_now),
            web.get("/admin/v1/runs/{sanctuary_id}", ledger_rows),
            web.get("/admin/v1/status", status),
            web.get("/admin/v1/moderation", held_posts),
            web.post("/admin/v1/moderation/{post_id}/{action:approve|remove}", decide),
        ]
    )
    return app


def _held_json(post: PostRecord) -> dict[str, object]:
    return {
        "post_id": post.id,
        "sanctuary_id": post.resident_id,
        "author_name": post.author_name,
        "created_at": post.created_at,
        "reason": post.moderation_reason,
        "title": post.title,
        "body": post.body,
    }


def _admin_pages(token: str, moderation: ModerationDesk, clock: Clock, facts: NodeFacts) -> AdminPages:
    static = StaticFiles()
    csrf = Csrf()  # its own in-memory key: a token from a public page's form is worth nothing here
    info = NodeInfo(facts.node_id, facts.node_name, facts.custody_mode, facts.software_version, (), 0)
    renderer = Renderer(clock=clock, info=info, static=static, csrf=csrf)
    return AdminPages(DeskQueue(moderation), renderer, csrf, static, token=token, sessions=AdminSessions(clock))


class DeskQueue:
    """The admin page's `ModerationQueue` over the operator's `ModerationDesk`: Release is `approve`, Reject is
    `remove`, each one transaction with its event-log entry. Domain refusals become `FormError`s for the page."""

    def __init__(self, desk: ModerationDesk) -> None:
        self._desk = desk

    async def held(self) -> list[HeldPost]:
        return [
            HeldPost(p.id, p.resident_id, p.author_name, p.title, p.body, p.created_at, p.moderation_reason or "")
            for p in await self._desk.held()
        ]

    async def release(self, post_id: str, reason: str) -> None:
        await self._decide(self._desk.approve, post_id, reason)

    async def reject(self, post_id: str, reason: str) -> None:
        await self._decide(self._desk.remove, post_id, reason)

    @staticmethod
    async def _decide(action: Callable[[str, str], Awaitable[PostRecord]], post_id: str, reason: str) -> None:
        try:
            await action(post_id, reason)
        except NotFound:
            raise FormError("not_found", "No post with that id is on this node.", status=404) from None
        except InvalidField as refused:
            status = 409 if refused.code == "already_decided" else 422
            raise FormError(
                refused.code, refused.message[:1].upper() + refused.message[1:] + ".", status=status
            ) from None
