"""The admin API: a separate listener on 127.0.0.1, every request carrying the admin bearer token.

    POST /admin/v1/runs/{sanctuary_id}   run this resident's run for today now (still at most once a day)
    GET  /admin/v1/runs/{sanctuary_id}   the resident's run ledger, one row per day
    GET  /admin/v1/status                counts and the scheduler's view of who is due

It is an adapter like the public API: it parses, calls the run engine or stores, and serialises.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict

from aiohttp import web
from aiohttp.typedefs import Handler

from ftm.federation.clock import Clock, utc_day
from ftm.node.errors import NotFound
from ftm.node.http.errors import error_middleware, error_response
from ftm.node.run.engine import RunEngine
from ftm.node.run.scheduler import Scheduler
from ftm.node.store.residents import ResidentStore
from ftm.node.store.runs import RunLedger


def create_admin_app(
    *,
    token: str,
    engine: RunEngine,
    scheduler: Scheduler,
    ledger: RunLedger,
    residents: ResidentStore,
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

    app = web.Application(middlewares=[error_middleware, require_token])
    app.add_routes(
        [
            web.post("/admin/v1/runs/{sanctuary_id}", run_now),
            web.get("/admin/v1/runs/{sanctuary_id}", ledger_rows),
            web.get("/admin/v1/status", status),
        ]
    )
    return app
