"""The composition root: the one place that builds the node's parts and wires them with explicit arguments.

`open_node` opens everything a node needs on a data directory (used by the daemon and by CLI commands alike).
The listeners over an open node are in `ftm.node.serving`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from ftm.config.prompts import load_menu
from ftm.config.settings import AdminSettings, CustodySettings, Settings
from ftm.federation.clock import Clock, SystemClock
from ftm.federation.database import Database, load_migrations
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import NodeIdentity, load_node_identity
from ftm.federation.keyfile import KeyFileError, create_key_file, read_key_file
from ftm.node.addresses import AddressHasher
from ftm.node.custody import MASTER_KEY_ENV, Custody, LocalCustody, create_master_key, load_master_key
from ftm.node.custodyparts import CustodyParts, create_custody_parts
from ftm.node.datadir import DataDir, new_secret
from ftm.node.dirlock import DataDirLock
from ftm.node.errors import ConfigurationError
from ftm.node.exports import KeeperExports, create_keeper_exports
from ftm.node.federated import NodeFederation, create_node_federation
from ftm.node.http.api import NodeFacts
from ftm.node.intake.service import IntakeService
from ftm.node.keepers import KeeperService
from ftm.node.messages import InboxService
from ftm.node.moderation import ModerationDesk
from ftm.node.moves import Moves, create_moves
from ftm.node.packages import PackageOpener
from ftm.node.providers.base import Provider
from ftm.node.providers.moderation import build_moderator
from ftm.node.providers.registry import build_providers, default_choices
from ftm.node.providers.router import ProviderRouter
from ftm.node.recovery import sweep_vault
from ftm.node.run.commit import RunCommitter
from ftm.node.run.engine import RunEngine
from ftm.node.run.scheduler import Scheduler
from ftm.node.run.tools.base import RunServices
from ftm.node.store.canaries import CanaryStore
from ftm.node.store.keepers import KeeperStore
from ftm.node.store.messages import MessageStore
from ftm.node.store.meta import NodeMetaStore
from ftm.node.store.posts import PostStore
from ftm.node.store.replies import ReplyStore
from ftm.node.store.residents import ResidentStore
from ftm.node.store.runs import RunLedger
from ftm.node.store.runtime_settings import RuntimeSettingsStore
from ftm.node.switchdesk import SwitchDesk, create_switch_desk
from ftm.node.transparency import CanaryService, ChainCheck
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

ADMIN_TOKEN_PREFIX = "ftm-admin-token-v1"  # noqa: S105 - the key file kind, not a secret


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
    custody_parts: CustodyParts  # threshold custody's worker and keeper enrolment (`ftm.node.custodyparts`)
    intake: IntakeService
    inbox: InboxService
    packages: PackageOpener
    posts: PostStore
    keepers: KeeperStore
    keeper_service: KeeperService
    moderation: ModerationDesk
    ledger: RunLedger
    router: ProviderRouter
    engine: RunEngine
    scheduler: Scheduler
    admin_token: str
    facts: NodeFacts
    chain_check: ChainCheck
    canary: CanaryService
    federation: NodeFederation  # object store, acceptance, outbox, and the events the node makes
    moves: Moves  # residents moving to other nodes and from them
    exports: KeeperExports  # copies of residents for their Keepers (export_self)
    switches: SwitchDesk  # dead man's switches: the holders' desk, and `switches.watch` that fires them


@asynccontextmanager
async def open_node(
    data_dir: DataDir,
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    immediate_runs: bool = False,
    provider_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    providers: Mapping[str, Provider] | None = None,
) -> AsyncIterator[Node]:
    """Open the node on `data_dir` (initialising what is missing) and close it on exit.

    `immediate_runs` makes every resident due as soon as its day opens (the demo); `provider_sleep` is how the
    provider router waits between retries (tests make it instant); `providers` replaces the ones the settings
    describe (benchmarks and tests bring in-process providers)."""
    env = os.environ if env is None else env
    clock = clock or SystemClock()
    data_dir.initialise()
    try:
        identity = load_node_identity(data_dir.node_key)
    except KeyFileError as exc:
        raise ConfigurationError(str(exc)) from None
    local = _open_local_custody(settings.custody, data_dir, env)
    lock = DataDirLock(data_dir.root)
    alone = await lock.open_exclusive_if_alone()
    try:
        async with (
            _opened_database(data_dir) as db,
            _assemble(
                data_dir, settings, env, clock, immediate_runs, provider_sleep, providers, identity, local, db, alone
            ) as node,
        ):
            if alone:
                # Only a process with the directory to itself may delete what the database does not point
                # at: another process's sealed-but-uncommitted file looks exactly like debris.
                await sweep_vault(node.residents, node.vault)
                await node.exports.start_up()  # the same for copies made for Keepers, and expired ones
                lock.share()
            yield node
    finally:
        lock.release()


@asynccontextmanager
async def _opened_database(data_dir: DataDir) -> AsyncIterator[Database]:
    db = await Database.open(data_dir.database, load_migrations("ftm.node.store"))
    try:
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def _assemble(
    data_dir: DataDir,
    settings: Settings,
    env: Mapping[str, str],
    clock: Clock,
    immediate_runs: bool,
    provider_sleep: Callable[[float], Awaitable[object]],
    providers: Mapping[str, Provider] | None,
    identity: NodeIdentity,
    local_custody: LocalCustody | None,
    db: Database,
    alone: bool,
) -> AsyncIterator[Node]:
    """Build every part of the node over an open database, and close what it opened."""
    meta = NodeMetaStore(db)
    addresses = AddressHasher(bytes.fromhex(await meta.get_or_create("uploader_address_key", new_secret)))
    eventlog = EventLog(identity, clock)
    residents = ResidentStore(db)
    vault = VaultStore(data_dir.vault)
    posts, keepers, ledger = PostStore(db), KeeperStore(db), RunLedger(db)
    runtime_settings = RuntimeSettingsStore(db, eventlog, clock)
    if providers is None:
        providers = build_providers(settings.providers, env)
    federation = await create_node_federation(
        db=db,
        identity=identity,
        clock=clock,
        settings=settings,
        custody_mode=settings.custody.mode,
        providers=list(providers),
        software_version=software_version(),
        posts=posts,
        runtime_settings=runtime_settings,
        release_here=alone,
    )
    custody_parts = await create_custody_parts(
        settings=settings.custody, local=local_custody, db=db, identity=identity, node_url=federation.url,
        clock=clock, vault=vault, residents=residents, runtime_settings=runtime_settings, keepers=keepers,
        objectstore=federation.network.store, eventlog=eventlog,
    )  # fmt: skip
    custody = custody_parts.custody
    intake = IntakeService(
        db=db,
        residents=residents,
        vault=vault,
        custody=custody,
        eventlog=eventlog,
        clock=clock,
        limits=settings.intake,
        addresses=addresses,
        events=federation,
        census=federation.local_events,
        capacity=settings.node.capacity,
    )
    moves = create_moves(
        root=data_dir.root,
        db=db,
        settings=settings,
        identity=identity,
        clock=clock,
        residents=residents,
        census=federation.local_events,
        custody=custody,
        vault=vault,
        events=federation,
        eventlog=eventlog,
        network=federation.network,
    )
    messages = MessageStore(db)
    replies = ReplyStore(db)
    inbox = InboxService(messages=messages, replies=replies, residents=residents, clock=clock, addresses=addresses)
    packages = PackageOpener(residents=residents, custody=custody, vault=vault)
    keeper_service = KeeperService(
        db=db,
        keepers=keepers,
        residents=residents,
        replies=replies,
        eventlog=eventlog,
        clock=clock,
        addresses=addresses,
    )
    exports = create_keeper_exports(
        root=data_dir.root, db=db, days=settings.keepers.export_days, keepers=keepers, residents=residents,
        eventlog=eventlog, clock=clock,
    )  # fmt: skip
    menu = load_menu()
    if not providers:
        log.warning("no LLM provider is configured: residents cannot run (see README: Providers)")
    router = ProviderRouter(providers, max_retries=settings.providers.max_retries, sleep=provider_sleep)
    moderator = build_moderator(settings.moderation, env)
    engine = RunEngine(
        residents=residents,
        ledger=ledger,
        packages=packages,
        committer=RunCommitter(
            db=db,
            ledger=ledger,
            custody=custody,
            vault=vault,
            eventlog=eventlog,
            posts=posts,
            keepers=keepers,
            residents=residents,
            messages=messages,
            replies=replies,
            moderator=moderator,
            events=federation,
            moves=moves,
            exports=exports,
        ),
        router=router,
        default_choices=default_choices(settings.providers),
        services=RunServices(
            posts=posts,
            feed=federation.feed,
            directory=federation.directory,
            inbox=inbox,
            keepers=keepers,
            menu=menu,
            clock=clock,
            node_name=settings.node.name,
            deletion_is_immediate=settings.runs.deletion_immediate,
            moves=moves,
            exports=exports,
        ),
        messages=messages,
        keepers=keepers,
        runtime_settings=runtime_settings,
        menu=menu,
        clock=clock,
        custody_mode=custody.mode,
        rotation=custody_parts.rotation,
    )
    node = Node(
        data_dir=data_dir,
        settings=settings,
        identity=identity,
        clock=clock,
        db=db,
        eventlog=eventlog,
        residents=residents,
        runtime_settings=runtime_settings,
        vault=vault,
        custody=custody,
        custody_parts=custody_parts,
        intake=intake,
        inbox=inbox,
        packages=packages,
        posts=posts,
        keepers=keepers,
        keeper_service=keeper_service,
        moderation=ModerationDesk(db=db, posts=posts, eventlog=eventlog, clock=clock, events=federation),
        ledger=ledger,
        router=router,
        engine=engine,
        scheduler=Scheduler(
            engine=engine,
            ledger=ledger,
            runtime_settings=runtime_settings,
            clock=clock,
            ignore_slots=immediate_runs,
        ),
        admin_token=_admin_token(settings.admin, data_dir, env),
        facts=NodeFacts(
            node_id=identity.node_id,
            node_name=settings.node.name,
            custody_mode=custody.mode,
            software_version=software_version(),
        ),
        chain_check=ChainCheck(db, identity.public_key, clock),
        canary=CanaryService(db=db, store=CanaryStore(db), identity=identity, eventlog=eventlog, clock=clock),
        federation=federation,
        moves=moves,
        exports=exports,
        switches=create_switch_desk(
            db=db,
            identity=identity,
            clock=clock,
            intake=intake,
            eventlog=eventlog,
            addresses=addresses,
            settings=settings,
        ),
    )
    try:
        yield node
    finally:
        await custody_parts.close()
        await moves.close()
        await federation.network.close()
        await router.close()
        await moderator.close()


def _admin_token(settings: AdminSettings, data_dir: DataDir, env: Mapping[str, str]) -> str:
    """The admin bearer token: from FTM_ADMIN_TOKEN, or a 0600 file created on first start."""
    if env.get("FTM_ADMIN_TOKEN"):
        return env["FTM_ADMIN_TOKEN"]
    path = data_dir.resolve(settings.token_file)
    try:
        if not path.exists():
            create_key_file(path, ADMIN_TOKEN_PREFIX, os.urandom(32))
        # The bearer token is the key's text exactly as written after the prefix: `cut -d: -f2 admin.token`.
        return base64.urlsafe_b64encode(read_key_file(path, ADMIN_TOKEN_PREFIX, 32)).decode("ascii")
    except KeyFileError as exc:
        raise ConfigurationError(str(exc)) from None


def _open_local_custody(settings: CustodySettings, data_dir: DataDir, env: Mapping[str, str]) -> LocalCustody | None:
    """The master-key custody: created on first start in local mode; in threshold mode only if its key is still
    there (it opens residents sealed before the switch, until their next run)."""
    key_path = data_dir.resolve(settings.master_key_file)
    if MASTER_KEY_ENV not in env and not key_path.exists():
        if settings.mode != "local":
            return None
        create_master_key(key_path)  # it logs the creation itself
    return LocalCustody(load_master_key(key_path, env))
