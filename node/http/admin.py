"""The admin API: a separate listener on 127.0.0.1, every request carrying the admin bearer token.

    POST /admin/v1/runs/{sanctuary_id}   run this resident's run for today now (still at most once a day)
    GET  /admin/v1/runs/{sanctuary_id}   the resident's run ledger, one row per day
    GET  /admin/v1/status                counts and the scheduler's view of who is due
    GET  /admin/v1/moderation            posts held for review, oldest first (with their text, for the operator)
    POST /admin/v1/moderation/{post_id}/approve   publish a held post; JSON body {"reason": CODE} optional
    POST /admin/v1/moderation/{post_id}/remove    keep a post off the node's pages; same optional body

It is an adapter like the public API: it parses, calls the run engine or stores, and serialises.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict

from aiohttp import web
from aiohttp.typedefs import Handler

from ftm.federation.clock import Clock, utc_day
from ftm.node.errors import InvalidField, MalformedInput, NotFound
from ftm.node.http.errors import error_middleware, error_response
from ftm.node.moderation import OPERATOR_REASON, ModerationDesk
from ftm.node.run.engine import RunEngine
from ftm.node.run.scheduler import Scheduler
from ftm.node.store.posts import PostRecord
from ftm.node.store.residents import ResidentStore
from ftm.node.store.runs import RunLedger


def create_admin_app(
    *,
    token: str,
    engine: RunEngine,
    scheduler: Scheduler,
    ledger: RunLedger,
    residents: ResidentStore,
    moderation: ModerationDesk,
    clock: Clock,
) -> web.Application:
    expected = token.encode()

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
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

    app = web.Application(middlewares=[error_middleware, require_token])
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
