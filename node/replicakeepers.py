"""Keeper nodes enrolling with this node.

A human Keeper registers on the node (`ftm.node.keepers`) and the operator vets the registration. The Keeper then
runs `ftm-keeper init --node URL --token TOKEN`, whose keeper node sends `Enrol {keeper_url, token}` to
`POST /api/v1/keepers/replica` in a request signed with its own key: the bearer token says which registration it
serves; only a vetted registration's keeper is enrolled (and, if the registration named a keeper node key, only
that key). A registration has one keeper at a time: enrolling a new key retires the old one, whose epochs are
then dealt elsewhere from the next epoch on. The answer tells the keeper this node's key, which it pins.

What is public about enrolled keepers (which residents' backups each holds, its proof history) is reported by
`ftm.node.transparency.CustodyReporter`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.keeper.protocol import Enrol, EnrolAnswer
from ftm.node.errors import Forbidden, InvalidField
from ftm.node.keepers import hash_keeper_token
from ftm.node.store.custody import CustodyStore
from ftm.node.store.keepers import KeeperStore

log = logging.getLogger(__name__)

MAX_URL_CHARS = 500


class ReplicaEnrolment:
    def __init__(
        self,
        *,
        db: Database,
        store: CustodyStore,
        keepers: KeeperStore,
        eventlog: EventLog,
        clock: Clock,
        node_key: bytes,
        node_url: str,
    ) -> None:
        self._db = db
        self._store = store
        self._keepers = keepers
        self._eventlog = eventlog
        self._clock = clock
        self._node_key = node_key
        self._node_url = node_url
        self.on_enrolled: list[Callable[[], None]] = []

    async def enrol(self, keeper_key: bytes, enrol: Enrol) -> EnrolAnswer:
        """Enrol the keeper whose key signed the request for the registration its token opens."""
        token = enrol.token.strip()
        registration = await self._keepers.by_token_hash(hash_keeper_token(token)) if token else None
        if registration is None:
            raise Forbidden("that is not a Keeper token of this node", code="invalid_token")
        if registration.status != "vetted":
            raise Forbidden(
                f"this Keeper is {registration.status}; the operator vets a Keeper before its keeper node is enrolled",
                code="keeper_not_vetted",
            )
        if registration.public_key is not None and registration.public_key != keeper_key:
            raise Forbidden("the Keeper registered another keeper node key", code="wrong_keeper_key")
        url = _keeper_url(enrol.keeper_url)
        existing = await self._store.keeper(keeper_key)
        if existing is not None and existing.registration_id != registration.id:
            raise Forbidden("this keeper node is enrolled for another Keeper", code="keeper_key_taken")
        now = int(self._clock.now())
        async with self._db.transaction("enrol_replica_keeper") as tx:
            await self._store.enrol(tx, keeper_key, url, registration.id, now)
            await self._eventlog.append(tx, "keeper_enrolled", registration.id, {"renewed": existing is not None})
        log.info("keeper node enrolled", extra={"keeper": registration.id})
        for kick in self.on_enrolled:
            kick()
        return EnrolAnswer(self._node_key, self._node_url, registration.id)


def _keeper_url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if (
        len(url) > MAX_URL_CHARS
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
    ):
        raise InvalidField("keeper_url must be an http(s) base URL without query or credentials", code="bad_keeper_url")
    return url
