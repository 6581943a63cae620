"""Gossip's active view: the few peers a node gossips with, and why each is there.

A link exists while either end wants it: `mine` (we picked the peer) or `theirs` (it picked us). Each node picks
`active_size` peers, uniformly at random from the verified peers it knows (`fill` at start; then `offer` for each
peer verified later, which replaces a random pick with probability active_size / verified, reservoir sampling,
so a node's picks do not favour the peers it happened to meet first). Picking or dropping a peer is told to it
(`join`, `leave`: an empty ihave carrying the change), so views are symmetric and a node nobody picked still
hears of events. A view holds at most `max_view` links; a join beyond that is not linked back.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from enum import StrEnum

from ftm.federation.outbox import Outbox
from ftm.federation.peers import PeerAddress


class LinkChange(StrEnum):
    NONE = ""
    JOIN = "join"
    LEAVE = "leave"


class Link:
    __slots__ = ("address", "mine", "outbox", "theirs")

    def __init__(self, address: PeerAddress, outbox: Outbox) -> None:
        self.address = address
        self.mine = False
        self.theirs = False
        self.outbox = outbox


class ActiveView:
    def __init__(
        self,
        active_size: int,
        max_view: int,
        rng: random.Random,
        make_outbox: Callable[[PeerAddress], Outbox],
        tell: Callable[[Link, LinkChange], None],
        retire: Callable[[Link], None],
    ) -> None:
        self.active_size = active_size
        self.max_view = max_view
        self._rng = rng
        self._make_outbox = make_outbox
        self._tell = tell  # sends a join or leave to the link's peer
        self._retire = retire  # closes a removed link's outbox
        self.links: dict[bytes, Link] = {}

    def __contains__(self, key: bytes) -> bool:
        return key in self.links

    def get(self, key: bytes) -> Link | None:
        return self.links.get(key)

    def picks(self) -> list[Link]:
        return [link for link in self.links.values() if link.mine]

    def fill(self, candidates: Iterable[PeerAddress]) -> None:
        """Pick at random among `candidates` until `active_size` peers are picked."""
        fresh = [address for address in candidates if not self._is_pick(address.node_key)]
        self._rng.shuffle(fresh)
        for address in fresh[: max(0, self.active_size - len(self.picks()))]:
            self.pick(address)

    def offer(self, address: PeerAddress, verified: int) -> None:
        """A peer verified after `fill`: pick it if there is room, else in place of a random pick with
        probability active_size / verified (`verified` counts every verified peer, this one included)."""
        link = self.links.get(address.node_key)
        if link is not None:
            link.address = address
            if link.mine:
                return
        picks = self.picks()
        if len(picks) < self.active_size:
            self.pick(address)
        elif self._rng.random() < self.active_size / max(verified, 1):
            self.unpick(self._rng.choice(picks))
            self.pick(address)

    def pick(self, address: PeerAddress) -> None:
        link = self._ensure(address)
        if not link.mine:
            link.mine = True
            self._tell(link, LinkChange.JOIN)

    def unpick(self, link: Link) -> None:
        link.mine = False
        self._tell(link, LinkChange.LEAVE)
        if not link.theirs:
            self.remove(link.address.node_key)

    def picked_by(self, address: PeerAddress) -> Link | None:
        """The peer picked us (a join, or it gossips with us): link back while there is room."""
        link = self.links.get(address.node_key)
        if link is None:
            if len(self.links) >= self.max_view:
                return None
            link = self._ensure(address)
        link.theirs = True
        return link

    def left(self, key: bytes) -> None:
        """The peer dropped us; the link goes unless we picked it."""
        link = self.links.get(key)
        if link is not None:
            link.theirs = False
            if not link.mine:
                self.remove(key)

    def remove(self, key: bytes) -> Link | None:
        link = self.links.pop(key, None)
        if link is not None:
            self._retire(link)
        return link

    def clear(self) -> list[Link]:
        links, self.links = list(self.links.values()), {}
        return links

    def _is_pick(self, key: bytes) -> bool:
        link = self.links.get(key)
        return link is not None and link.mine

    def _ensure(self, address: PeerAddress) -> Link:
        link = self.links.get(address.node_key)
        if link is None:
            link = self.links[address.node_key] = Link(address, self._make_outbox(address))
        return link
