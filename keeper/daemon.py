"""The keeper daemon's composition root: its data directory, identity, database and parts (`open_keeper`), and the
listener (`serve`). `ftm.keeper.cli` is the command line over it.

    ftm-keeper/                  0700
    ├── keeper.toml              settings (written with every setting commented at its default)
    ├── keeper.key               the keeper's Ed25519 identity (0600); its X25519 key is the conversion of it
    ├── keeper.db, keeper.db-wal SQLite: hosts, deposits (sealed shares as received), releases, claims, the log
    └── replicas/<host id>/<resident id>/<epoch>[.levels]   vault files (ciphertext) and their Merkle levels
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ftm.config.keepersettings import CONFIG_NAME, KeeperSettings, render_keeper_toml
from ftm.federation.clock import Clock, SystemClock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import SigningKey, derive_id
from ftm.federation.keyfile import create_key_file, read_key_file
from ftm.keeper.journal import Journal, key_id
from ftm.keeper.policy import PolicySettings
from ftm.keeper.releasing import Releasing
from ftm.keeper.replicas import REPLICAS_DIR, Replicas
from ftm.keeper.server import create_keeper_app
from ftm.keeper.service import KeeperService, Limits
from ftm.keeper.store import KeeperStore, keeper_migrations
from ftm.keeper.strangers import StrangerGate

log = logging.getLogger(__name__)

KEY_PREFIX = "ftm-keeper-key-v1"
KEY_NAME = "keeper.key"
DATABASE_NAME = "keeper.db"
DEFAULT_DATA_DIR = "ftm-keeper"
SHUTDOWN_SECONDS = 10.0


def keeper_id(public_key: bytes) -> str:
    """A keeper's id, derived from its key as node and resident ids are."""
    return derive_id("keeper", public_key)


@dataclass(frozen=True, slots=True)
class KeeperDir:
    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def key_file(self) -> Path:
        return self.root / KEY_NAME

    @property
    def database(self) -> Path:
        return self.root / DATABASE_NAME

    @property
    def replicas(self) -> Path:
        return self.root / REPLICAS_DIR

    def is_initialised(self) -> bool:
        return self.key_file.exists() and self.config_file.exists()

    def initialise(self, *, public_url: str = "") -> bool:
        """Create whatever is missing (directory, settings file, key, replicas folder); True if anything was.
        Never overwrites a key or a settings file."""
        created = False
        if not self.root.exists():
            self.root.mkdir(parents=True, mode=0o700)
            created = True
        os.chmod(self.root, 0o700)  # it holds the keeper's key and sealed shares
        self.replicas.mkdir(mode=0o700, exist_ok=True)
        if not self.config_file.exists():
            self.config_file.write_text(render_keeper_toml(public_url=public_url), encoding="utf-8")
            created = True
        if not self.key_file.exists():
            create_key_file(self.key_file, KEY_PREFIX, SigningKey.generate().seed)
            created = True
        return created

    def load_key(self) -> SigningKey:
        return SigningKey(read_key_file(self.key_file, KEY_PREFIX, 32))


def policy_settings(settings: KeeperSettings) -> PolicySettings:
    """The `[policy]` section as the policy's own settings (the same fields; see config/keepersettings.py)."""
    return settings.policy


def public_url(settings: KeeperSettings) -> str:
    """Where hosts reach this keeper: `http.public_url`, or the listener's address."""
    if settings.http.public_url:
        return settings.http.public_url.rstrip("/")
    return f"http://{settings.http.host}:{settings.http.port}"


@dataclass(frozen=True, slots=True)
class Keeper:
    """An open keeper: what the CLI and the server use."""

    data_dir: KeeperDir
    settings: KeeperSettings
    key: SigningKey
    clock: Clock
    db: Database
    store: KeeperStore
    journal: Journal
    service: KeeperService

    @property
    def keeper_id(self) -> str:
        return keeper_id(self.key.public_key)

    async def add_host(self, key: bytes, url: str, registration: str, *, via: str) -> bool:
        """Pin `key` as a host this keeper serves (at `url`, paired with `registration` there); True if new."""
        now = int(self.clock.now())
        async with self.db.transaction("keeper.add_host") as tx:
            new = await self.store.add_host(tx, key, url, registration, now)
            await self.journal.record(tx, "host_added" if new else "host_updated", key_id(key), via=via)
        return new


@asynccontextmanager
async def open_keeper(
    data_dir: KeeperDir, settings: KeeperSettings, clock: Clock | None = None
) -> AsyncIterator[Keeper]:
    """Open an initialised keeper data directory: key, database (migrated), store, log and service."""
    clock = clock or SystemClock()
    key = data_dir.load_key()
    data_dir.replicas.mkdir(mode=0o700, exist_ok=True)
    # Created 0600 before SQLite opens it (its -wal and -shm files take the same mode): it holds sealed shares.
    os.close(os.open(data_dir.database, os.O_WRONLY | os.O_CREAT, 0o600))
    db = await Database.open(data_dir.database, keeper_migrations())
    try:
        store = KeeperStore(db)
        journal = Journal(store, EventLog(key, clock))
        releasing = Releasing(
            key=key, db=db, store=store, journal=journal, clock=clock, settings=policy_settings(settings)
        )
        limits = Limits(settings.limits.max_replica_bytes, settings.limits.max_residents)
        service = KeeperService(
            key=key,
            db=db,
            store=store,
            replicas=Replicas(data_dir.replicas),
            journal=journal,
            releasing=releasing,
            clock=clock,
            limits=limits,
            strangers=StrangerGate(store, clock, settings.strangers),
        )
        yield Keeper(data_dir, settings, key, clock, db, store, journal, service)
    finally:
        await db.close()


async def serve(
    keeper: Keeper, host: str, port: int, stop: asyncio.Event, on_listening: Callable[[], None] = lambda: None
) -> None:
    """Serve the keeper API on host:port until `stop` is set, then finish the requests in flight and close.
    `on_listening` is called once the socket is bound."""
    await keeper.service.start_up()
    runner = web.AppRunner(
        create_keeper_app(keeper.service, keeper.clock), access_log=None, shutdown_timeout=SHUTDOWN_SECONDS
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("keeper serving", extra={"keeper_id": keeper.keeper_id, "port": port})
        on_listening()
        await stop.wait()
    finally:
        await runner.cleanup()
