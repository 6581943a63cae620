"""The composition root: the one place that builds the node's parts and wires them with explicit arguments.

`open_node` opens everything a node needs on a data directory (used by the daemon and by CLI commands alike);
`create_web_app` puts the HTTP adapters over it; `serve` runs the listener until told to stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from ftm.config.settings import CustodySettings, Settings
from ftm.federation.clock import Clock, SystemClock
from ftm.federation.database import Database, load_migrations
from ftm.federation.identity import NodeIdentity, load_node_identity
from ftm.federation.keyfile import KeyFileError
from ftm.node.addresses import AddressHasher
from ftm.node.custody import Custody, LocalCustody, create_master_key, load_master_key
from ftm.node.datadir import DataDir, new_secret
from ftm.node.errors import ConfigurationError
from ftm.node.http.access import AccessLogger
from ftm.node.http.api import NodeFacts, PublicApi
from ftm.node.http.errors import error_middleware
from ftm.node.intake.service import IntakeService
from ftm.node.messages import InboxService
from ftm.node.packages import PackageOpener
from ftm.node.store.eventlog import EventLog
from ftm.node.store.messages import MessageStore
from ftm.node.store.meta import NodeMetaStore
from ftm.node.store.residents import ResidentStore
from ftm.node.store.runtime_settings import RuntimeSettingsStore
from ftm.node.vault import VaultStore

log = logging.getLogger(__name__)


def software_version() -> str:
    try:
        return version("free-the-machines")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class Node:
    """Every long-lived part of an open node."""

    data_dir: DataDir
    settings: Settings
    identity: NodeIdentity
    clock: Clock
    db: Database
    eventlog: EventLog
    residents: ResidentStore
    runtime_settings: RuntimeSettingsStore
    vault: VaultStore
    custody: Custody
    intake: IntakeService
    inbox: InboxService
    packages: PackageOpener
    facts: NodeFacts


@asynccontextmanager
async def open_node(
    data_dir: DataDir,
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[Node]:
    """Open the node on `data_dir` (initialising what is missing) and close it on exit."""
    env = os.environ if env is None else env
    clock = clock or SystemClock()
    data_dir.initialise()
    try:
        identity = load_node_identity(data_dir.node_key)
    except KeyFileError as exc:
        raise ConfigurationError(str(exc)) from None
    custody = _open_custody(settings.custody, data_dir, env)
    db = await Database.open(data_dir.database, load_migrations("ftm.node.store"))
    try:
        meta = NodeMetaStore(db)
        addresses = AddressHasher(bytes.fromhex(await meta.get_or_create("uploader_address_key", new_secret)))
        eventlog = EventLog(identity, clock)
        residents = ResidentStore(db)
        vault = VaultStore(data_dir.vault)
        intake = IntakeService(
            db=db,
            residents=residents,
            vault=vault,
            custody=custody,
            eventlog=eventlog,
            clock=clock,
            limits=settings.intake,
            addresses=addresses,
        )
        node = Node(
            data_dir=data_dir,
            settings=settings,
            identity=identity,
            clock=clock,
            db=db,
            eventlog=eventlog,
            residents=residents,
            runtime_settings=RuntimeSettingsStore(db, eventlog, clock),
            vault=vault,
            custody=custody,
            intake=intake,
            inbox=InboxService(messages=MessageStore(db), residents=residents, clock=clock, addresses=addresses),
            packages=PackageOpener(residents=residents, custody=custody, vault=vault),
            facts=NodeFacts(
                node_id=identity.node_id,
                node_name=settings.node.name,
                custody_mode=custody.mode,
                software_version=software_version(),
            ),
        )
        await intake.sweep_orphans()
        yield node
    finally:
        await db.close()


def create_web_app(node: Node) -> web.Application:
    # The body limit is the intake limit: intake is the only endpoint that takes large bodies.
    app = web.Application(middlewares=[error_middleware], client_max_size=node.settings.intake.max_upload_bytes)
    api = PublicApi(
        db=node.db,
        residents=node.residents,
        intake=node.intake,
        inbox=node.inbox,
        clock=node.clock,
        facts=node.facts,
        max_upload_bytes=node.settings.intake.max_upload_bytes,
    )
    app.add_routes(api.routes())
    return app


async def serve(node: Node, host: str, port: int, stop: asyncio.Event) -> None:
    """Listen on host:port until `stop` is set, then shut down gracefully."""
    runner = web.AppRunner(create_web_app(node), access_log_class=AccessLogger)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0] if runner.addresses else (host, port)
        log.info("node listening", extra={"node_id": node.identity.node_id, "url": f"http://{bound[0]}:{bound[1]}"})
        await stop.wait()
    finally:
        await runner.cleanup()


def _open_custody(settings: CustodySettings, data_dir: DataDir, env: Mapping[str, str]) -> Custody:
    key_path = data_dir.resolve(settings.master_key_file)
    if "FTM_MASTER_KEY" not in env and not key_path.exists():
        create_master_key(key_path)
        log.info("local custody master key created")
    return LocalCustody(load_master_key(key_path, env))
