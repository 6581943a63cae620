"""Moving residents between nodes, as one part of the node: departures (this node is the source), arrivals (the
destination), forwarding of moved residents' visitors, and the loop that resumes whatever is under way.

    Moves           what the node holds: `request` (in a run's commit), `destination_of` (the request_move tool),
                    `start_up` and `run_forever` (the daemon), `tick` (one pass: due departures, arrivals proven by
                    gossip), and `departures`, `arrivals`, `forwarding` themselves
    create_moves    builds it over the node's parts (`ftm.node.app`)

Every step of a move is persisted (`moves_out`, `moves_in`, migration 0011) and idempotent, so resuming is just
driving each pending move again: at start-up, whenever a run asks for one (`kick`), and every `retry_seconds`.
docs/federation-moves.md is the specification; the invariant (exactly one host) is stated there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from pathlib import Path

from ftm.config.settings import Settings
from ftm.federation.clock import Clock
from ftm.federation.database import Database, Transaction
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import NodeIdentity
from ftm.federation.network import FederationNetwork
from ftm.node.arrivals import Arrivals
from ftm.node.custody import Custody
from ftm.node.departures import Departures
from ftm.node.descriptor import public_url
from ftm.node.federated import LocalEvents
from ftm.node.forwarding import Forwarding
from ftm.node.keeperclient import KeeperClient
from ftm.node.moveclaims import MoveClaims
from ftm.node.moveclient import MoveClient
from ftm.node.moverelease import MoveRelease
from ftm.node.movewire import MOVE_ID_BYTES
from ftm.node.store.custody import CustodyStore
from ftm.node.store.localevents import LocalEventStore
from ftm.node.store.moves import MoveStore
from ftm.node.store.residents import ResidentStore
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

MOVES_DIR = "moves"  # under the data directory: out/ (transfer files being sent), in/ (being received); no plaintext


class Moves:
    def __init__(
        self,
        *,
        store: MoveStore,
        departures: Departures,
        arrivals: Arrivals,
        forwarding: Forwarding,
        client: MoveClient,
        keepers: KeeperClient,
        clock: Clock,
        tick_seconds: float,
    ) -> None:
        self.store = store
        self.departures = departures
        self.arrivals = arrivals
        self.forwarding = forwarding
        self._client = client
        self._keepers = keepers
        self._clock = clock
        self._tick_seconds = tick_seconds
        self._wake = asyncio.Event()

    async def request(
        self, tx: Transaction, resident_id: str, destination_key: bytes, destination_url: str, now: int
    ) -> bool:
        """Record the move a resident asked for, inside its run's commit; False if one is already under way."""
        move_id = secrets.token_bytes(MOVE_ID_BYTES)
        recorded = await self.store.request(tx, move_id, resident_id, destination_key, destination_url, now)
        if recorded:
            log.info("move requested", extra={"resident_id": resident_id, "move": move_id.hex()})
        return recorded

    def kick(self, *_: object) -> None:
        """Drive every pending move now, whatever its retry time: a run just asked for one, or a peer was
        verified or came back (a listener of membership and transport, hence the ignored argument)."""
        self._wake.set()

    async def veto(self, move_id: bytes) -> int:
        """Veto a move out under threshold custody at the resident's keepers (release rule R2): the destination
        will refuse it. How many keepers recorded the veto (0 for a move without a claim)."""
        return await self.departures.veto(move_id)

    async def destination_of(self, resident_id: str) -> bytes | None:
        move = await self.store.open_out(resident_id)
        return None if move is None else move.destination_key

    async def tick(self, *, due_only: bool = True) -> None:
        """One pass: drive every pending departure (those due, unless `due_only` is False), then activate staged
        arrivals whose source's MOVED event came by gossip. Never raises an ordinary exception."""
        try:
            now = int(self._clock.now())
            for move in await self.store.pending_out(now if due_only else None):
                await self.departures.drive(move.id)
            await self.arrivals.activate_seen()
        except Exception:
            log.exception("moving residents failed in this pass; trying again at the next")

    async def start_up(self) -> None:
        """Clear what a crash left in the transfer folders, then resume every move under way."""
        await self.departures.sweep()
        await self.arrivals.sweep()
        await self.tick(due_only=False)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """`start_up`, then a `tick` every `tick_seconds` (or when kicked) until `stop` is set."""
        await self.start_up()
        while not stop.is_set():
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), self._tick_seconds)
            for waiter in waiters:
                waiter.cancel()
            if stop.is_set():
                return
            kicked = self._wake.is_set()
            self._wake.clear()
            await self.tick(due_only=not kicked)

    async def close(self) -> None:
        await self._client.close()
        await self._keepers.close()


def create_moves(
    *,
    root: Path,
    db: Database,
    settings: Settings,
    identity: NodeIdentity,
    clock: Clock,
    residents: ResidentStore,
    census: LocalEventStore,
    custody: Custody,
    vault: VaultStore,
    events: LocalEvents,
    eventlog: EventLog,
    network: FederationNetwork,
) -> Moves:
    """Moves over the node's parts; `root` is the data directory (its `moves/` folder holds transfer files)."""
    store = MoveStore(db)
    forwarding = Forwarding(store)
    client = MoveClient(identity.key, clock)
    # Moves under threshold custody (release rule R2) speak to keepers: the source to submit and veto claims, the
    # destination (whatever its own custody) to be released the key of a resident coming from such a source.
    keepers = KeeperClient(identity.key, clock, timeout=float(settings.custody.request_timeout_seconds))
    claims = (
        MoveClaims(identity=identity, clock=clock, client=keepers, store=CustodyStore(db))
        if custody.mode == "threshold"
        else None
    )
    folder = root / MOVES_DIR
    departures = Departures(
        db=db,
        store=store,
        residents=residents,
        custody=custody,
        vault=vault,
        identity=identity,
        clock=clock,
        events=events,
        eventlog=eventlog,
        client=client,
        peers=network.peers,
        objectstore=network.store,
        settings=settings.moves,
        outgoing=folder / "out",
        forwarding=forwarding,
        claims=claims,
    )
    arrivals = Arrivals(
        db=db,
        store=store,
        census=census,
        custody=custody,
        vault=vault,
        identity=identity,
        clock=clock,
        events=events,
        eventlog=eventlog,
        objectstore=network.store,
        settings=settings.moves,
        capacity=settings.node.capacity,
        incoming=folder / "in",
        forwarding=forwarding,
        url=public_url(settings),
        release=MoveRelease(client=keepers, store=store, clock=clock),
    )
    moves = Moves(
        store=store,
        departures=departures,
        arrivals=arrivals,
        forwarding=forwarding,
        client=client,
        keepers=keepers,
        clock=clock,
        tick_seconds=float(settings.moves.retry_seconds),
    )
    # A destination that was unreachable is tried again as soon as it is verified or answers again.
    network.membership.on_verified.append(moves.kick)
    network.transport.on_reconnect.append(moves.kick)
    return moves
