"""Who may take a resident over at this keeper (docs/custody.md, "Changing the registered host").

The release policy's facts about a resident are those of its latest deposit here, so a deposit by another host
makes that host the registered host: from then on it is the one given the resident's run releases, and the one
whose claims and vetoes count. A host this keeper serves therefore may not deposit an epoch of a resident that the
keeper holds for another host (a live epoch: deposited, held or committed) unless a claim accepted here hands the
resident over to it: a move claim naming it as destination, past its delay without a veto (R2), or a disaster claim
naming it as new host, past its wait and not cancelled (R3) (`policy.host_change_claim`). Anything else is refused
`403 not_host`, which `ftm.keeper.receiving` logs as a `deposit_refused` like its other refusals.

Deposits by the registered host, and deposits of residents this keeper holds for nobody else (a first deposit, or
one after every other host's epochs were destroyed), are not this module's business.
"""

from __future__ import annotations

from ftm.keeper import policy
from ftm.keeper.errors import KeeperError
from ftm.keeper.holdingparts import HoldingParts
from ftm.keeper.journal import key_id
from ftm.keeper.releasing import disaster_records, move_records, resident_facts
from ftm.keeper.store import LIVE_STATES


async def host_change_refusal(parts: HoldingParts, signer: bytes, resident_id: str) -> KeeperError | None:
    """`403 not_host` if `signer`'s deposit of the resident would take it over from another host without a claim
    that hands it over; None if the deposit may go on (to the checks that follow)."""
    store, q = parts.store, parts.db
    held_for_others = any(
        d.host_key != signer and d.state in LIVE_STATES for d in await store.deposits_of(q, resident_id)
    )
    if not held_for_others:
        return None
    resident = await resident_facts(store, q, resident_id)
    if resident is None or resident.host_key == signer:
        return None
    claim = policy.host_change_claim(
        signer,
        resident,
        moves=await move_records(store, q, resident_id),
        disasters=await disaster_records(store, q, resident_id),
        now=parts.now(),
    )
    if claim is not None:
        return None
    return KeeperError(
        403,
        policy.Code.NOT_HOST,
        f"this keeper holds resident {resident_id} for host {key_id(resident.host_key)}; another host may deposit "
        "it only as the destination of a move claim past its delay, or the new host of a disaster claim past its wait",
    )
