"""The node's listeners: the public HTTP application over an open node, the admin listener, and `serve`, which runs
both (and the scheduler) until told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from ftm.federation.discovery import Advert, DiscoveryError
from ftm.federation.gossipwire import API_PREFIX
from ftm.federation.mdns import ZeroconfDiscovery, create_mdns_discovery
from ftm.federation.signedrequests import RequestVerifier
from ftm.keeper import protocol as keeper_protocol
from ftm.node.app import Node
from ftm.node.errors import ConfigurationError
from ftm.node.http.access import AccessSummary, access_logger_class
from ftm.node.http.admin import create_admin_app
from ftm.node.http.api import PublicApi
from ftm.node.http.discovery import DiscoveryApi
from ftm.node.http.errors import create_error_middleware
from ftm.node.http.keepers_api import KeeperApi
from ftm.node.http.moves import create_moves_app, forwarding_middleware
from ftm.node.http.switch_api import SwitchApi
from ftm.node.http.transparency import NodeLedger, TransparencyApi
from ftm.node.http.webview import NodeWebView
from ftm.node.movewire import PREFIX as MOVES_PREFIX
from ftm.node.transparency import CustodyReporter
from ftm.webui.pagecache import PageCache
from ftm.webui.site import WebUi

log = logging.getLogger(__name__)

PAGE_CACHE = web.AppKey("page_cache", PageCache)  # for tests and operators' tools: its hit and miss counts


def create_web_app(node: Node) -> web.Application:
    max_upload_bytes = node.settings.intake.max_upload_bytes
    custody = CustodyReporter(
        db=node.db, mode=node.facts.custody_mode, settings=node.settings.custody, clock=node.clock
    )  # who holds which backups: the transparency page and its JSON
    pages = WebUi(
        NodeWebView(
            db=node.db,
            residents=node.residents,
            posts=node.posts,
            intake=node.intake,
            inbox=node.inbox,
            keepers=node.keeper_service,
            clock=node.clock,
            facts=node.facts,
            max_upload_bytes=max_upload_bytes,
            federation=node.federation,
        ),
        clock=node.clock,
        max_upload_bytes=max_upload_bytes,
        ledger=NodeLedger(
            db=node.db,
            identity=node.identity,
            facts=node.facts,
            chain=node.chain_check,
            canary=node.canary,
            custody=custody,
            clock=node.clock,
        ),
    )
    # The body limit is the intake limit: intake is the only endpoint that takes large bodies.
    app = web.Application(middlewares=[create_error_middleware(pages.error_response)], client_max_size=max_upload_bytes)
    api = PublicApi(
        db=node.db,
        residents=node.residents,
        intake=node.intake,
        inbox=node.inbox,
        posts=node.posts,
        clock=node.clock,
        facts=node.facts,
        max_upload_bytes=max_upload_bytes,
        federation=node.federation,
    )
    app.add_routes(api.routes())
    enrolment = RequestVerifier(node.identity.public_key, node.clock, max_body_bytes=keeper_protocol.MAX_MESSAGE_BYTES)
    app.add_routes(
        KeeperApi(
            node.keeper_service, exports=node.exports, enrolment=node.custody_parts.enrolment, verifier=enrolment
        ).routes()
    )
    app.add_routes(SwitchApi(node.switches).routes())
    app.add_routes(DiscoveryApi(node.facts).routes())
    app.add_routes(
        TransparencyApi(
            db=node.db,
            identity=node.identity,
            facts=node.facts,
            chain=node.chain_check,
            canary=node.canary,
            custody=custody,
            clock=node.clock,
        ).routes()
    )
    app.add_routes(pages.routes())
    app.add_subapp(API_PREFIX, node.federation.network.create_app())  # node-to-node: signed requests only
    app.add_subapp(
        MOVES_PREFIX,
        create_moves_app(node.moves.arrivals, node.identity.key, node.clock, node.federation.network.peers),
    )
    app.middlewares.append(forwarding_middleware(node.moves.forwarding))  # moved residents' visitors go on
    app.on_response_prepare.append(pages.on_response_prepare)
    app[PAGE_CACHE] = pages.page_cache
    return app


async def serve(node: Node, host: str, port: int, stop: asyncio.Event) -> None:
    """Listen on host:port (and the admin listener), run the scheduler, until `stop` is set; then shut down."""
    summary = AccessSummary()
    access_log_class = access_logger_class(node.settings.http.access_log, summary)
    runners = [web.AppRunner(create_web_app(node), access_log_class=access_log_class)]
    admin = node.settings.admin
    if admin.port:
        admin_app = create_admin_app(
            token=node.admin_token,
            engine=node.engine,
            scheduler=node.scheduler,
            ledger=node.ledger,
            residents=node.residents,
            moderation=node.moderation,
            clock=node.clock,
            facts=node.facts,
        )
        runners.append(web.AppRunner(admin_app, access_log_class=access_log_class))
    scheduler_task: asyncio.Task[None] | None = None
    moves_task: asyncio.Task[None] | None = None
    custody_task: asyncio.Task[None] | None = None
    upkeep_task: asyncio.Task[None] | None = None
    switches_task: asyncio.Task[None] | None = None
    discovery: _Discovering | None = None
    try:
        await node.federation.start_up()  # events queued before a stop, missing attestations, a changed descriptor
        listeners = [("public", host, port, "--port or http.port"), ("admin", admin.host, admin.port, "admin.port")]
        for runner, (what, bind_host, bind_port, setting) in zip(runners, listeners, strict=False):
            await runner.setup()
            try:
                await web.TCPSite(runner, bind_host, bind_port).start()
            except OSError as exc:
                raise ConfigurationError(
                    f"the {what} listener cannot bind {bind_host}:{bind_port} ({exc.strerror}); "
                    f"choose another port with {setting}" + (" (0 turns it off)" if what == "admin" else "")
                ) from None
        log.info("node listening", extra={"node_id": node.identity.node_id, "url": f"http://{host}:{port}"})
        if node.settings.runs.scheduler:
            scheduler_task = asyncio.create_task(node.scheduler.run_forever(stop, node.settings.runs.tick_seconds))
        upkeep_task = asyncio.create_task(node.federation.maintain(stop))
        await node.federation.network.start(node.federation.url)
        moves_task = asyncio.create_task(node.moves.run_forever(stop))  # resumes moves under way, then retries
        if node.custody_parts.worker is not None:  # threshold custody: deliveries, commits, destroys, proofs
            custody_task = asyncio.create_task(node.custody_parts.worker.run_forever(stop))
        if node.settings.switch.enabled:  # resumes firings under way, then fires silent switches
            switches_task = asyncio.create_task(node.switches.watch.run_forever(stop))
        discovery = await _start_discovery(node, port)
        await stop.wait()
    finally:
        if discovery is not None:
            await discovery.close()
        if upkeep_task is not None:
            await upkeep_task  # it returns as soon as `stop` is set
        if moves_task is not None:
            moves_task.cancel()  # a move step cut short is resumed at the next start, like one cut by a crash
            with contextlib.suppress(asyncio.CancelledError):
                await moves_task
        if switches_task is not None:
            await switches_task  # it returns at its next check of `stop`; a firing under way finishes first
        if custody_task is not None:
            custody_task.cancel()  # every custody step resumes from the database at the next start
            with contextlib.suppress(asyncio.CancelledError):
                await custody_task
        if scheduler_task is not None:
            await scheduler_task  # it returns at its next check of `stop`; a run in progress finishes first
        for runner in runners:
            await runner.cleanup()
        summary.flush()


class _Discovering:
    """mDNS discovery while the node serves: advertised, and its hints followed as peer candidates."""

    def __init__(self, discovery: ZeroconfDiscovery, follower: asyncio.Task[None]) -> None:
        self._discovery = discovery
        self._follower = follower

    async def close(self) -> None:
        await self._discovery.close()  # ends the hints, so the follower returns
        self._follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._follower


async def _start_discovery(node: Node, port: int) -> _Discovering | None:
    """Advertise this node by mDNS and follow what it finds, when `[discovery]` says so; a failure to advertise
    is logged and leaves the node without mDNS rather than stopping it (peers still come by bootstrap)."""
    discovery = await create_mdns_discovery(node.settings)
    if discovery is None:
        return None
    try:
        await discovery.start()
        await discovery.advertise(Advert(node.identity.public_key, node.federation.url, port))
    except (DiscoveryError, OSError, ValueError) as exc:
        log.warning("mDNS discovery could not start; peers come by bootstrap only", extra={"reason": str(exc)})
        await discovery.close()
        return None
    return _Discovering(discovery, asyncio.create_task(node.federation.network.membership.follow(discovery)))
