"""Helpers for keeper tests: a keeper daemon's parts on a real aiohttp server (127.0.0.1), parties that sign
requests to it (a host, a destination, guardians, strangers), and epochs dealt the way a host deals them."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp.test_utils import TestServer

from ftm.config.keepersettings import KeeperSettings, load_keeper_settings
from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import LogEntry, read_entries
from ftm.federation.identity import SigningKey, derive_id
from ftm.federation.signedrequests import RequestSigner
from ftm.keeper import protocol
from ftm.keeper.daemon import Keeper, KeeperDir, open_keeper
from ftm.keeper.merkle import merkle_root
from ftm.keeper.protocol import (
    CONTENT_TYPE,
    DATA_CONTENT_TYPE,
    PREFIX,
    PROTOCOL_VERSION,
    Deposit,
    DisasterClaim,
    DisasterTerms,
    MoveClaim,
    MoveTerms,
    RunWindow,
    sign_claim,
)
from ftm.keeper.server import create_keeper_app
from ftm.keeper.shareboxes import seal_share_to_keeper
from ftm.keeper.shares import Commitments, Dealing, Share, deal

M = TypeVar("M")
START = 1_800_000_000  # 08:00:00 UTC
SECOND_OF_DAY = START % 86_400
MiB = 1024 * 1024


@asynccontextmanager
async def running_keeper(
    root: Path, clock: FakeClock, settings: KeeperSettings | None = None
) -> AsyncIterator[tuple[Keeper, TestServer]]:
    data_dir = KeeperDir(root)
    data_dir.initialise()
    settings = settings or load_keeper_settings(None, {})
    async with open_keeper(data_dir, settings, clock) as keeper:
        server = TestServer(create_keeper_app(keeper.service, clock), host="127.0.0.1")
        await server.start_server()
        try:
            yield keeper, server
        finally:
            await server.close()


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def error(self) -> str:
        return str(json.loads(self.body)["error"]["code"])

    def decoded(self, cls: type[M]) -> M:
        assert self.status == 200, self.body[:300]
        return protocol.decode(cls, self.body, max_bytes=4 * MiB)


@dataclass
class Party:
    """Someone who signs requests to the keeper: a host, a destination, a guardian or a stranger."""

    key: SigningKey
    clock: FakeClock
    server: TestServer
    keeper_key: bytes
    session: aiohttp.ClientSession

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    async def post(self, path: str, body: bytes, content_type: str = CONTENT_TYPE) -> Answer:
        url = str(self.server.make_url(PREFIX + path))
        headers = RequestSigner(self.key, self.clock).headers("POST", url, body, self.keeper_key)
        headers["Content-Type"] = content_type
        # As a stream: aiohttp warns about raw bodies over 1 MiB, which the size-limit tests send.
        async with self.session.post(url, data=io.BytesIO(body), headers=headers) as response:
            return Answer(response.status, await response.read(), dict(response.headers))

    async def send(self, path: str, message: object) -> Answer:
        return await self.post(path, protocol.encode(message))

    async def data(self, resident_id: str, epoch: int, offset: int, chunk: bytes) -> Answer:
        query = f"{protocol.PATH_DATA}?resident={resident_id}&epoch={epoch}&offset={offset}"
        return await self.post(query, chunk, DATA_CONTENT_TYPE)


@dataclass
class Epoch:
    """One dealt epoch of one resident, as the host made it: its vault file (random bytes: ciphertext), the
    dealing and the deposit for the keeper holding share `x`."""

    resident_key: SigningKey
    epoch: int
    vault: bytes
    dealing: Dealing
    deposit: Deposit
    guardians: tuple[SigningKey, ...] = field(default_factory=tuple)

    @property
    def resident_id(self) -> str:
        return derive_id("resident", self.resident_key.public_key)

    @property
    def commitments(self) -> Commitments:
        return self.dealing.commitments

    @property
    def share(self) -> Share:
        return self.dealing.shares[self.deposit.x - 1]


def deal_epoch(
    keeper_key: bytes,
    *,
    resident_key: SigningKey | None = None,
    epoch: int = 1,
    length: int = 3 * MiB // 2,
    x: int = 1,
    window: RunWindow | None = None,
    guardians: tuple[SigningKey, ...] = (),
    guardian_threshold: int = 0,
    seed: bytes = b"vault",
) -> Epoch:
    resident_key = resident_key or SigningKey.generate()
    resident_id = derive_id("resident", resident_key.public_key)
    vault = _bytes(seed + epoch.to_bytes(8, "big"), length)
    dealing = deal(2, 3)
    window = window or RunWindow(SECOND_OF_DAY - 600, 3600)  # 07:50 to 08:50 UTC: the clock starts inside
    deposit = Deposit(
        version=protocol.PROTOCOL_VERSION,
        resident_id=resident_id,
        resident_key=resident_key.public_key,
        epoch=epoch,
        threshold=2,
        x=x,
        commitments=dealing.commitments.encode(),
        sealed_share=seal_share_to_keeper(keeper_key, resident_id, epoch, dealing.shares[x - 1]),
        window=window,
        guardians=tuple(g.public_key for g in guardians),
        guardian_threshold=guardian_threshold,
        length=len(vault),
        root=merkle_root(vault),
    )
    return Epoch(resident_key, epoch, vault, dealing, deposit, guardians)


def _bytes(seed: bytes, length: int) -> bytes:
    """Deterministic bytes that look like ciphertext (SHA-256 in counter mode)."""
    blocks = (hashlib.sha256(seed + i.to_bytes(8, "big")).digest() for i in range(-(-length // 32)))
    return b"".join(blocks)[:length]


async def deliver(host: Party, epoch: Epoch, *, chunk: int = MiB) -> Answer:
    """deposit → data (from the keeper's progress) → seal; the seal's answer."""
    progress = (await host.send(protocol.PATH_DEPOSIT, epoch.deposit)).decoded(protocol.Progress)
    offset = progress.received
    while offset < len(epoch.vault):
        piece = epoch.vault[offset : offset + chunk]
        offset = (await host.data(epoch.resident_id, epoch.epoch, offset, piece)).decoded(protocol.Progress).received
    seal = protocol.Seal(protocol.PROTOCOL_VERSION, epoch.resident_id, epoch.epoch)
    return await host.send(protocol.PATH_SEAL, seal)


async def log_entries(keeper: Keeper) -> list[LogEntry]:
    return await read_entries(keeper.db, limit=10_000)


def files_under(root: Path) -> list[Path]:
    return [Path(folder) / name for folder, _, names in os.walk(root) for name in names]


def any_file_contains(root: Path, needle: bytes) -> list[Path]:
    return [path for path in files_under(root) if needle in path.read_bytes()]


def with_policy(**changes: Any) -> KeeperSettings:
    settings = load_keeper_settings(None, {})
    return replace(settings, policy=replace(settings.policy, **changes))


def move_claim(epoch: Epoch, host: Party, destination: Party, created_at: int) -> MoveClaim:
    """A move of the epoch's resident from `host` to `destination`, signed by both (release rule R2)."""
    terms = MoveTerms(
        PROTOCOL_VERSION, epoch.resident_id, epoch.epoch, host.public_key, destination.public_key,
        "https://destination.example", created_at,
    )  # fmt: skip
    body = protocol.encode(terms)
    return MoveClaim(body, (sign_claim(host.key, body), sign_claim(destination.key, body)))


def disaster_claim(
    epoch: Epoch, host: Party, new_host: Party, signers: tuple[SigningKey, ...], created_at: int
) -> DisasterClaim:
    """A disaster claim of the epoch's resident for `new_host`, signed by `signers` and the new host (rule R3)."""
    terms = DisasterTerms(
        PROTOCOL_VERSION, host.public_key, new_host.public_key, "https://new.example", (epoch.resident_id,),
        created_at,
    )  # fmt: skip
    body = protocol.encode(terms)
    return DisasterClaim(body, tuple(sign_claim(key, body) for key in (*signers, new_host.key)))
