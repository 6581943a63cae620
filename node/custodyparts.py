"""Custody as one part of the node: the mode the settings choose, and what threshold custody brings with it.

    CustodyParts           the custody, its worker (threshold only), keeper enrolment, and the rotation runs use
    create_custody_parts   builds them over the node's parts (`ftm.node.app`), refusing a threshold node that has
                           fewer enrolled keepers of vetted Keepers than it deals to (`ConfigurationError`)

Local custody wraps keys with the master key (`ftm.node.custody`). Threshold custody deals each epoch to keepers
(`ftm.node.thresholdcustody`), and the custody worker (`ftm.node.custodyworker`) delivers, commits, destroys and
challenges; a master key that is still there opens residents sealed before the switch, until their next run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftm.config.settings import CustodySettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import NodeIdentity
from ftm.federation.objectstore import ObjectStore
from ftm.node.custody import Custody, LocalCustody
from ftm.node.custodyproofs import containment_offsets
from ftm.node.custodyworker import CustodyWorker
from ftm.node.errors import ConfigurationError
from ftm.node.keeperclient import KeeperClient
from ftm.node.replicakeepers import ReplicaEnrolment
from ftm.node.rotation import EpochRotation
from ftm.node.store.custody import CustodyStore
from ftm.node.store.keepers import KeeperStore
from ftm.node.store.residents import ResidentStore
from ftm.node.store.runtime_settings import RuntimeSettingsStore
from ftm.node.thresholdcustody import ThresholdCustody
from ftm.node.vaultstore import VaultStore

GUARDIAN_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class CustodyParts:
    custody: Custody
    store: CustodyStore
    enrolment: ReplicaEnrolment  # keeper nodes enrol in either mode: a node enrols them before it switches
    worker: CustodyWorker | None  # threshold custody's background work
    rotation: EpochRotation | None  # for custody whose epochs open once

    async def close(self) -> None:
        if self.worker is not None:
            await self.worker.close()


async def create_custody_parts(
    *,
    settings: CustodySettings,
    local: LocalCustody | None,
    db: Database,
    identity: NodeIdentity,
    node_url: str,
    clock: Clock,
    vault: VaultStore,
    residents: ResidentStore,
    runtime_settings: RuntimeSettingsStore,
    keepers: KeeperStore,
    objectstore: ObjectStore,
    eventlog: EventLog,
) -> CustodyParts:
    """`local` is the master-key custody: the custody itself in local mode, and in threshold mode (when its key is
    there) what opens residents sealed before the switch."""
    store = CustodyStore(db)
    enrolment = ReplicaEnrolment(
        db=db, store=store, keepers=keepers, eventlog=eventlog, clock=clock,
        node_key=identity.public_key, node_url=node_url,
    )  # fmt: skip
    if settings.mode != "threshold":
        if local is None:
            raise ConfigurationError("local custody needs its master key")
        return CustodyParts(local, store, enrolment, None, None)
    guardians = _threshold_settings(settings)
    enrolled = len(await store.dealable())
    if enrolled < settings.keepers:
        raise ConfigurationError(
            f"threshold custody deals each epoch to {settings.keepers} keepers (custody.keepers), but {enrolled} "
            "keeper nodes of vetted Keepers are enrolled. Enrol them while the node runs in local custody "
            "(`ftm-keeper init --node URL --token TOKEN`); for a one-off command, FTM_CUSTODY_MODE=local"
        )
    client = KeeperClient(identity.key, clock, timeout=float(settings.request_timeout_seconds))
    custody = ThresholdCustody(
        threshold=settings.threshold, keepers=settings.keepers, store=store, client=client, vault=vault,
        inherited=local,
    )  # fmt: skip
    worker = CustodyWorker(
        db=db, store=store, residents=residents, runtime_settings=runtime_settings, vault=vault, client=client,
        identity=identity, objectstore=objectstore, eventlog=eventlog, clock=clock, settings=settings,
        guardians=guardians,
    )  # fmt: skip
    custody.on_stored.append(worker.kick)
    enrolment.on_enrolled.append(worker.kick)
    rotation = EpochRotation(db=db, custody=custody, vault=vault, store=store, eventlog=eventlog)
    return CustodyParts(custody, store, enrolment, worker, rotation)


def _threshold_settings(settings: CustodySettings) -> tuple[bytes, ...]:
    """Check what the settings tree cannot check key by key; returns the guardians' keys."""
    if settings.threshold >= settings.keepers:
        raise ConfigurationError(
            f"custody.threshold ({settings.threshold}) must be less than custody.keepers ({settings.keepers}): "
            "an epoch commits once threshold + 1 keepers hold it"
        )
    guardians: list[bytes] = []
    for text in (part.strip() for part in settings.guardians.split(",")):
        if not text:
            continue
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != GUARDIAN_KEY_BYTES:
            raise ConfigurationError("custody.guardians is a comma-separated list of 64-hex-digit Ed25519 keys")
        guardians.append(key)
    if len(set(guardians)) != len(guardians):
        raise ConfigurationError("custody.guardians names a key twice")
    if guardians and not 1 <= settings.guardian_threshold <= len(guardians):
        raise ConfigurationError(f"custody.guardian_threshold must be 1 to {len(guardians)} with guardians set")
    if not guardians and settings.guardian_threshold:
        raise ConfigurationError("custody.guardian_threshold is set, but custody.guardians names no one")
    try:
        containment_offsets(settings.containment_minutes)
    except ValueError as error:
        raise ConfigurationError(f"custody.containment_minutes: {error}") from None
    return tuple(guardians)
