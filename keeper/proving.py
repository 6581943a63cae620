"""Proof of possession (docs/custody.md, "Proofs of possession"): a host's `challenge` is answered with sampled
Merkle proofs of the replica and a Schnorr proof of the share, signed (`Proof`); a copy that cannot answer is
recorded and logged as damaged. The share is opened only in memory, for the proof.
"""

from __future__ import annotations

from ftm.keeper import merkle
from ftm.keeper.errors import KeeperError
from ftm.keeper.holdingparts import SEALED, HoldingParts
from ftm.keeper.journal import key_id
from ftm.keeper.protocol import (
    PROOF_DOMAIN,
    PROTOCOL_VERSION,
    Challenge,
    Proof,
    SignedAnswer,
    sign_answer,
)
from ftm.keeper.shareboxes import open_share
from ftm.keeper.shares import Commitments, prove_possession


class Proving:
    def __init__(self, parts: HoldingParts) -> None:
        self._p = parts

    async def challenge(self, signer: bytes, challenge: Challenge) -> SignedAnswer:
        rid, epoch, nonce = challenge.resident_id, challenge.epoch, challenge.nonce
        low, high, most = merkle.MIN_NONCE_BYTES, merkle.MAX_NONCE_BYTES, merkle.MAX_SAMPLES
        if not low <= len(nonce) <= high or not 1 <= challenge.samples <= most:
            message = f"a nonce is {low} to {high} bytes, and 1 to {most} samples are asked for"
            raise KeeperError(400, "bad_challenge", message)
        async with self._p.locks.hold(rid):
            record = await self._p.host_deposit(signer, rid, epoch)
            if record.state not in SEALED:
                raise KeeperError(409, "not_held", f"epoch {epoch} of {rid} is {record.state}")
            damaged: merkle.ProverError | None = None
            try:
                proof = await self._p.replicas.prove(
                    signer, rid, epoch, nonce, challenge.samples, record.root, record.length
                )
            except merkle.ProverError as error:
                damaged = error
            now = self._p.now()
            async with self._p.db.transaction("keeper.challenge") as tx:
                await self._p.journal.contact(tx, signer, now)
                outcome = "answered" if damaged is None else "damaged"
                leaf = None if damaged is None else damaged.leaf
                await self._p.store.record_challenge(tx, record, nonce, challenge.samples, outcome, leaf, now)
                if damaged is None:
                    await self._p.journal.record(
                        tx, "challenge_answered", rid, host=key_id(signer), epoch=epoch, samples=challenge.samples
                    )
                else:
                    await self._p.journal.refusal(
                        tx,
                        "challenge_failed",
                        rid,
                        "replica_damaged",
                        signer,
                        host=key_id(signer),
                        epoch=epoch,
                        leaf=leaf,
                    )
        if damaged is not None:
            raise KeeperError(409, "replica_damaged", f"this keeper's copy is damaged: {damaged}")
        commitments = Commitments.decode(record.commitments)
        share = open_share(self._p.key, record.sealed_share, rid, epoch, record.x)
        possession = prove_possession(share, commitments, nonce=nonce, binding=self._p.keeper_key)
        del share
        answer = Proof(PROTOCOL_VERSION, rid, epoch, nonce, self._p.keeper_key, proof.encode(), possession, now)
        return sign_answer(self._p.key, PROOF_DOMAIN, answer)
