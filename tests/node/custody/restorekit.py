"""What restore tests share: a node under threshold custody with guardians that hosts residents and is then lost
(its data directory deleted), a fresh node to restore them onto, and the parties of a disaster claim."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ftm.federation.clock import FakeClock
from ftm.federation.identity import SigningKey
from ftm.keeper.protocol import Ack
from ftm.node.datadir import DataDir
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.persona import PersonaPackage
from ftm.node.restore import Outcome, Step, create_restorer
from ftm.node.restoreclaims import OpenClaim, new_claim, sign_claim_file
from ftm.node.restorefetch import Grant, survey
from ftm.node.store.posts import PostRecord
from ftm.node.store.residents import ResidentRecord
from tests.fakes.llm_server import FakeLLM, Reply
from tests.node.custody.grid import THRESHOLD, Grid, KeeperSite, enrol_keepers, open_keepers
from tests.node.moves.sites import Site, open_site, peered
from tests.node.run.engine.harness import ending

SILENCE = 3600  # the keepers' disaster_silence_seconds in these tests
WAIT = 600  # their disaster_wait_seconds
KEEPER_POLICY = {
    "FTM_KEEPER_POLICY_DISASTER_SILENCE_SECONDS": str(SILENCE),
    "FTM_KEEPER_POLICY_DISASTER_WAIT_SECONDS": str(WAIT),
}


@dataclass
class LostNode:
    """What is left of a node after its data directory was deleted: what the test remembers of it."""

    key: SigningKey  # a copy of its node.key, kept only to play "the operator kept the key file" and heartbeats
    residents: list[str]
    packages: dict[str, PersonaPackage]  # each resident's package as the node last sealed it
    signing_keys: dict[str, bytes]
    records: dict[str, ResidentRecord] = field(default_factory=dict)  # each resident's row, as last committed
    posts: dict[str, list[PostRecord]] = field(default_factory=dict)  # each resident's published posts


@asynccontextmanager
async def keepers_and_guardians(
    root: Path, clock: FakeClock
) -> AsyncIterator[tuple[list[KeeperSite], list[SigningKey]]]:
    async with open_keepers(root / "keepers", clock, 5, KEEPER_POLICY) as keepers:
        yield keepers, [SigningKey.generate() for _ in range(3)]


async def lose_a_node(
    root: Path,
    clock: FakeClock,
    llm: FakeLLM,
    keepers: list[KeeperSite],
    guardians: Sequence[SigningKey],
    count: int,
    *,
    note_packages: bool = True,
    day: Sequence[Reply] = (),
    peer: Site | None = None,
) -> LostNode:
    """A threshold node (2 of its 3 guardians may sign a disaster claim) admits `count` residents, each runs once
    and its epoch commits at all five keepers; the test notes each package (which spends the epoch's run release:
    `note_packages=False` leaves it for a restore with the old key); then the node stops and its whole data
    directory is deleted. `day`: what each resident does in its run (else it ends at once); `peer`: a node of the
    federation that this one peers with and has reconciled with before it is lost."""
    data_dir = DataDir(root / "lost")
    async with open_site(data_dir, clock, llm) as local:
        await enrol_keepers(local, keepers, clock)
    settings = {
        **THRESHOLD,
        "FTM_CUSTODY_GUARDIANS": ",".join(g.public_key.hex() for g in guardians),
        "FTM_CUSTODY_GUARDIAN_THRESHOLD": "2",
    }
    bootstrap = "" if peer is None else peer.url
    async with open_site(data_dir, clock, llm, settings=settings, bootstrap=bootstrap) as site:
        grid = Grid(site, keepers, llm, clock)
        residents = [(await grid.admit()).sanctuary_id for _ in range(count)]
        await grid.settle()
        for rid in residents:
            if day:
                llm.script(*day, *ending())
            assert (await grid.run(rid, 0, script=not day)).state == "completed"
        await grid.settle()
        if peer is not None:
            await peered(site, peer)
            await site.node.federation.network.antientropy.reconcile_all()
        for rid in residents:
            assert await grid.keeper_states(rid, 2) == ["committed"] * 5
        # Opening spends each epoch's run release; the claims below rest on another grant.
        packages = {rid: await site.node.packages.open(rid) for rid in residents} if note_packages else {}
        records = {rid: await grid.resident(rid) for rid in residents}
        keys = {rid: record.signing_public_key for rid, record in records.items()}
        posts = {rid: await site.node.posts.feed(limit=100, resident_id=rid) for rid in residents}
        key = site.node.identity.key
    shutil.rmtree(data_dir.root)
    return LostNode(key, residents, packages, keys, records, posts)


@asynccontextmanager
async def fresh_node(root: Path, clock: FakeClock, llm: FakeLLM, *, peer: Site | None = None) -> AsyncIterator[Site]:
    """A new node in local custody with a new key: where the residents are restored (peered with `peer`)."""
    async with open_site(DataDir(root / "fresh"), clock, llm, bootstrap="" if peer is None else peer.url) as site:
        if peer is not None:
            await peered(site, peer)
        yield site


@asynccontextmanager
async def fresh_threshold_node(
    root: Path, clock: FakeClock, llm: FakeLLM, keepers: list[KeeperSite]
) -> AsyncIterator[tuple[Site, Grid]]:
    """A new node under threshold custody (3 of 5) over the same keepers, enrolled with them: a restored resident's
    next epoch is dealt to them (`Grid.settle` delivers and commits it)."""
    data_dir = DataDir(root / "fresh")
    async with open_site(data_dir, clock, llm) as local:
        await enrol_keepers(local, keepers, clock)
    async with open_site(data_dir, clock, llm, settings=THRESHOLD) as site:
        yield site, Grid(site, keepers, llm, clock)


def addresses(keepers: Sequence[KeeperSite]) -> list[KeeperAddress]:
    return [KeeperAddress(k.key, k.url) for k in keepers]


def claim_for(site: Site, lost: LostNode, guardians: Sequence[SigningKey], clock: FakeClock) -> OpenClaim:
    claim = new_claim(site.node.identity.key, lost.key.public_key, site.url, lost.residents, int(clock.now()))
    for guardian in guardians:
        claim = sign_claim_file(claim, guardian)
    return claim


async def submit(site: Site, keepers: Sequence[KeeperSite], claim: OpenClaim) -> list[Ack | str]:
    """Each keeper's answer to the claim: its Ack, or the code it refused with."""
    client = KeeperClient(site.node.identity.key, site.node.clock)
    answers: list[Ack | str] = []
    try:
        for keeper in addresses(keepers):
            try:
                answers.append(await client.disaster(keeper, claim.claim))
            except KeeperCallError as error:
                answers.append(error.code)
    finally:
        await client.close()
    return answers


async def restore(
    site: Site, keepers: Sequence[KeeperSite], signer: SigningKey, purpose: str, claim_id: bytes, old_host: bytes
) -> tuple[list[Outcome], list[Step]]:
    """What `ftm-node restore run` does, in process: survey, then restore every resident found."""
    client = KeeperClient(signer, site.node.clock)
    steps: list[Step] = []
    try:
        found = await survey(client, addresses(keepers), old_host)
        restorer = create_restorer(site.node)
        with restorer.exclusive():
            outcomes = await restorer.restore(found, Grant(client, purpose, claim_id), old_host, on_step=steps.append)
    finally:
        await client.close()
    return outcomes, steps


async def heartbeat(key: SigningKey, keepers: Sequence[KeeperSite], clock: FakeClock) -> None:
    """The old host is heard from: one heartbeat to every keeper."""
    from ftm.keeper.protocol import PROTOCOL_VERSION, Heartbeat

    client = KeeperClient(key, clock)
    try:
        for keeper in addresses(keepers):
            with contextlib.suppress(KeeperCallError):
                await client.heartbeat(keeper, Heartbeat(PROTOCOL_VERSION, int(clock.now())))
    finally:
        await client.close()
