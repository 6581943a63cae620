"""Release policy: every code path of R1-R4 and of the claim transitions, the run window's edges (grace, midnight,
always), the order in which checks are made, and properties over arbitrary facts and request sequences: a
tombstoned resident is never released, a non-host never gets a run's share, a run gets each epoch at most once,
a vetoed move never releases, any contact from the host after a disaster claim cancels it. The codes and
settings are held against the specification (the "Release policy" section of the custody docs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ftm.keeper.policy import (
    DAY_SECONDS,
    Code,
    Decision,
    DisasterClaimFacts,
    DisasterRecord,
    DisplacedDestroyFacts,
    EpochFacts,
    Grant,
    MoveClaimFacts,
    MoveRecord,
    PolicySettings,
    Purpose,
    ReleaseFacts,
    ResidentFacts,
    RunWindow,
    VetoFacts,
    decide_displaced_destroy,
    decide_release,
    explain,
    majority,
    open_disaster_claim,
    open_move_claim,
    veto_move,
)


def key(n: int) -> bytes:
    return bytes([n]) * 32


def claim(n: int) -> bytes:
    return hashlib.sha256(bytes([n])).digest()


HOST, DEST, STRANGER, NEW_HOST, OTHER_DEST = key(1), key(2), key(3), key(4), key(5)
GUARDIANS = (key(11), key(12), key(13))
OUTSIDER_GUARDIAN = key(19)  # a guardian of another resident named by the same disaster claim
KEYS = (HOST, DEST, STRANGER, NEW_HOST, OTHER_DEST, *GUARDIANS, OUTSIDER_GUARDIAN)
RID = "lumen"
DAY0 = 20_833 * DAY_SECONDS  # a UTC midnight (2027-01-15)
WINDOW = RunWindow(start_second=6 * 3600, length_seconds=3600)  # 06:00 to 07:00 UTC
SETTINGS = PolicySettings()
SILENCE = SETTINGS.disaster_silence_seconds
C1, C2, C3 = claim(1), claim(2), claim(3)
E1, E2, E3 = bytes([0xE1]) * 32, bytes([0xE2]) * 32, bytes([0xE3]) * 32  # requesters' one-run X25519 keys


def at(hours: int, minutes: int = 0, seconds: int = 0, *, day: int = 0) -> int:
    return DAY0 + day * DAY_SECONDS + hours * 3600 + minutes * 60 + seconds


def make_resident(**overrides: Any) -> ResidentFacts:
    fields: dict[str, Any] = {
        "resident_id": RID,
        "host_key": HOST,
        "window": WINDOW,
        "last_host_contact": DAY0,
        "guardians": frozenset(GUARDIANS),
    }
    fields.update(overrides)
    return ResidentFacts(**fields)


def make_epoch(**overrides: Any) -> EpochFacts:
    fields: dict[str, Any] = {"epoch": 7}
    fields.update(overrides)
    return EpochFacts(**fields)


def ask(
    purpose: str = "run",
    *,
    requester: bytes = HOST,
    now: int = at(6, 30),
    claim_id: bytes = b"",
    ephemeral: bytes = E1,
    resident: ResidentFacts | None = None,
    epoch: EpochFacts | None = None,
    no_epoch: bool = False,
    moves: Sequence[MoveRecord] = (),
    disasters: Sequence[DisasterRecord] = (),
    policy: PolicySettings = SETTINGS,
) -> Decision:
    request = ReleaseFacts(purpose, RID, 7, requester, now, claim_id, ephemeral_key=ephemeral)
    held = None if no_epoch else (epoch or make_epoch())
    return decide_release(request, resident or make_resident(), held, moves=moves, disasters=disasters, settings=policy)


def open_move(
    resident: ResidentFacts,
    moves: Sequence[MoveRecord] = (),
    *,
    claim_id: bytes = C1,
    now: int = at(9),
    destination: bytes = DEST,
    host: bytes | None = None,
    signers: frozenset[bytes] | None = None,
    policy: PolicySettings = SETTINGS,
) -> tuple[Decision, MoveRecord | None]:
    host = resident.host_key if host is None else host
    signed = frozenset({host, destination}) if signers is None else signers
    facts = MoveClaimFacts(claim_id, resident.resident_id, host, destination, signed, now)
    return open_move_claim(facts, resident, moves, settings=policy)


def veto(
    resident: ResidentFacts, moves: Sequence[MoveRecord], *, by: bytes = HOST, claim_id: bytes = C1, now: int
) -> tuple[Decision, MoveRecord | None]:
    return veto_move(VetoFacts(claim_id, resident.resident_id, by, now), resident, moves)


def open_disaster(
    resident: ResidentFacts,
    disasters: Sequence[DisasterRecord] = (),
    *,
    claim_id: bytes = C1,
    now: int = DAY0 + SILENCE,
    new_host: bytes = NEW_HOST,
    old_host: bytes | None = None,
    signers: frozenset[bytes] | None = None,
    policy: PolicySettings = SETTINGS,
) -> tuple[Decision, DisasterRecord | None]:
    old_host = resident.host_key if old_host is None else old_host
    signed = frozenset({*GUARDIANS[:2], new_host}) if signers is None else signers
    facts = DisasterClaimFacts(claim_id, resident.resident_id, old_host, new_host, signed, now)
    return open_disaster_claim(facts, resident, disasters, settings=policy)


def opened_move(resident: ResidentFacts, **kwargs: Any) -> MoveRecord:
    decision, record = open_move(resident, **kwargs)
    assert decision.allowed and record is not None, decision
    return record


def opened_disaster(resident: ResidentFacts, **kwargs: Any) -> DisasterRecord:
    decision, record = open_disaster(resident, **kwargs)
    assert decision.allowed and record is not None, decision
    return record


# The run window


@pytest.mark.parametrize(
    ("start", "length", "grace", "second", "inside"),
    [
        (21600, 3600, 0, 21600, True),  # the first second
        (21600, 3600, 0, 21599, False),  # one before
        (21600, 3600, 0, 25199, True),  # the last second
        (21600, 3600, 0, 25200, False),  # start + length is outside
        (21600, 3600, 300, 21300, True),  # grace before
        (21600, 3600, 300, 21299, False),
        (21600, 3600, 300, 25499, True),  # grace after
        (21600, 3600, 300, 25500, False),
        (82800, 7200, 0, 86399, True),  # 23:00 for two hours: over midnight
        (82800, 7200, 0, 0, True),
        (82800, 7200, 0, 3599, True),
        (82800, 7200, 0, 3600, False),
        (82800, 7200, 0, 82799, False),
        (82800, 7200, 300, 3899, True),
        (82800, 7200, 300, 3900, False),
        (82800, 7200, 300, 82500, True),
        (82800, 7200, 300, 82499, False),
        (0, 60, 300, 86100, True),  # a window at midnight: the grace reaches back into the previous day
        (0, 60, 300, 86099, False),
        (0, 60, 300, 359, True),
        (0, 60, 300, 360, False),
        (86399, 1, 0, 86399, True),  # the last second of the day only
        (86399, 1, 0, 0, False),
        (86399, 1, 0, 86398, False),
        (86399, 1, 1, 0, True),
        (86399, 1, 1, 86398, True),
        (86399, 1, 1, 1, False),
        (86399, 1, 1, 86397, False),
        (43200, 86399, 0, 43199, False),  # all but one second
        (43200, 86399, 1, 43199, True),
    ],
)
def test_window_edges(start: int, length: int, grace: int, second: int, inside: bool) -> None:
    window = RunWindow(start, length)
    for day in (0, 1, -3, 20_000):
        assert window.contains(day * DAY_SECONDS + second, grace) is inside


@settings(deadline=None)
@given(
    start=st.integers(0, DAY_SECONDS - 1),
    length=st.integers(1, DAY_SECONDS),
    grace=st.integers(0, 3600),
    now=st.integers(0, 4_000_000_000),
)
def test_window_matches_intervals_on_the_line(start: int, length: int, grace: int, now: int) -> None:
    """The same rule stated another way: the window widened by the grace is an interval of the real line starting
    within a day of midnight; the second of the day is inside if it, or it a day later or earlier, falls in it."""
    low, high = start - grace, start + length + grace
    second = now % DAY_SECONDS
    expected = high - low >= DAY_SECONDS or any(
        low <= second + shift < high for shift in (-DAY_SECONDS, 0, DAY_SECONDS)
    )
    assert RunWindow(start, length).contains(now, grace) is expected


@settings(deadline=None)
@given(start=st.integers(0, DAY_SECONDS - 1), grace=st.integers(0, 3600), now=st.integers(0, 4_000_000_000))
def test_a_window_of_a_whole_day_is_always_open(start: int, grace: int, now: int) -> None:
    assert RunWindow(start, DAY_SECONDS).contains(now, grace)
    resident = make_resident(window=RunWindow(start, DAY_SECONDS))
    assert ask(now=now, resident=resident, policy=PolicySettings(window_grace_seconds=grace)).allowed


@pytest.mark.parametrize(("start", "length"), [(-1, 10), (DAY_SECONDS, 10), (0, 0), (0, DAY_SECONDS + 1), (True, 5)])
def test_window_bounds_are_enforced(start: int, length: int) -> None:
    with pytest.raises(ValueError, match="run window"):
        RunWindow(start, length)


# Settings and facts


@pytest.mark.parametrize(
    "overrides",
    [
        {"window_grace_seconds": -1},
        {"window_grace_seconds": 3601},
        {"move_delay_seconds": 0},
        {"disaster_silence_seconds": -5},
        {"disaster_wait_seconds": 0},
        {"move_delay_seconds": True},
        {"disaster_wait_seconds": 60.0},
    ],
)
def test_settings_refuse_out_of_range_values(overrides: dict[str, Any]) -> None:
    name = next(iter(overrides))
    with pytest.raises(ValueError, match=name):
        PolicySettings(**overrides)


def test_settings_change_the_decisions() -> None:
    strict = PolicySettings(window_grace_seconds=0, move_delay_seconds=60)
    assert not ask(now=at(5, 59, 59), policy=strict).allowed
    assert ask(now=at(5, 55), policy=SETTINGS).allowed
    record = opened_move(make_resident(), now=at(9), policy=strict)
    assert ask("move", requester=DEST, now=at(9, 1), claim_id=C1, moves=[record]).allowed


@settings(deadline=None)
@given(count=st.integers(1, 255))
def test_default_threshold_is_a_majority(count: int) -> None:
    needed = majority(count)
    assert 2 * needed > count >= 2 * (needed - 1)
    guardians = frozenset(key(n) for n in range(count))
    assert make_resident(guardians=guardians).guardians_needed == needed


@pytest.mark.parametrize(
    "overrides",
    [
        {"host_key": b"short"},
        {"guardians": frozenset({b"x" * 31})},
        {"guardians": [key(11)]},
        {"guardian_threshold": 0},
        {"guardian_threshold": 4},
        {"guardians": frozenset(), "guardian_threshold": 1},
        {"last_host_contact": -1},
        {"resident_id": ""},
    ],
)
def test_resident_facts_are_checked(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"resident id|key|guardian|last_host_contact"):
        make_resident(**overrides)


def test_facts_of_another_resident_or_epoch_are_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="another resident"):
        ask(resident=make_resident(resident_id="someone-else"))
    with pytest.raises(ValueError, match="another epoch"):
        ask(epoch=make_epoch(epoch=8))


# R1: scheduled runs


def test_run_release_to_the_host_in_the_window() -> None:
    decision = ask()
    assert decision.allowed and decision.code == Code.RUN_RELEASED
    assert decision.grant == Grant(Purpose.RUN, ephemeral_key=E1) and not decision.repeat
    assert "7" in decision.reason


@pytest.mark.parametrize("requester", [DEST, STRANGER, GUARDIANS[0], NEW_HOST])
def test_run_release_needs_the_registered_host(requester: bytes) -> None:
    assert ask(requester=requester).code == Code.NOT_HOST


@pytest.mark.parametrize("now", [at(5, 54, 59), at(7, 5), at(18), at(6, 30, day=1) - DAY_SECONDS // 2])
def test_run_release_outside_the_window(now: int) -> None:
    decision = ask(now=now)
    assert not decision.allowed and decision.code == Code.OUTSIDE_WINDOW
    assert str(now % DAY_SECONDS) in decision.reason


def test_run_release_uses_the_default_grace_at_both_ends() -> None:
    assert ask(now=at(5, 55)).allowed
    assert ask(now=at(5, 55) - 1).code == Code.OUTSIDE_WINDOW
    assert ask(now=at(7, 4, 59)).allowed
    assert ask(now=at(7, 5)).code == Code.OUTSIDE_WINDOW


def test_run_release_over_midnight() -> None:
    resident = make_resident(window=RunWindow(23 * 3600 + 30 * 60, 3600))  # 23:30 to 00:30
    assert ask(now=at(23, 45), resident=resident).allowed
    assert ask(now=at(0, 15, day=1), resident=resident).allowed
    assert ask(now=at(0, 35, day=1), resident=resident).code == Code.OUTSIDE_WINDOW


def test_run_release_of_an_epoch_not_held_or_destroyed() -> None:
    assert ask(no_epoch=True).code == Code.UNKNOWN_EPOCH
    assert ask(epoch=make_epoch(destroyed=True)).code == Code.DESTROYED_EPOCH


def test_run_release_once_per_epoch_to_one_ephemeral_key() -> None:
    first = ask(ephemeral=E1)
    assert first.grant is not None
    released = make_epoch().with_grant(first.grant)
    again = ask(now=at(6, 31), ephemeral=E2, epoch=released)
    assert again.code == Code.ALREADY_RELEASED and again.grant is None
    next_day = ask(now=at(6, 30, day=1), ephemeral=E2, epoch=released)
    assert next_day.code == Code.ALREADY_RELEASED  # a new day is no new epoch


def test_a_run_asking_again_with_the_same_ephemeral_key_is_answered_again() -> None:
    first = ask(ephemeral=E1)
    assert first.grant is not None
    released = make_epoch().with_grant(first.grant)
    repeat = ask(now=at(6, 50), ephemeral=E1, epoch=released)
    assert (repeat.allowed, repeat.code, repeat.grant, repeat.repeat) == (True, Code.RUN_RELEASED, first.grant, True)
    assert "repeat" in repeat.reason
    assert released.with_grant(repeat.grant) == released  # recording it again changes nothing
    # A repeat is still a run's release: the host, inside the window, an epoch still held.
    assert ask(requester=STRANGER, ephemeral=E1, epoch=released).code == Code.NOT_HOST
    assert ask(now=at(12), ephemeral=E1, epoch=released).code == Code.OUTSIDE_WINDOW
    destroyed = make_epoch(destroyed=True, released=released.released)
    assert ask(ephemeral=E1, epoch=destroyed).code == Code.DESTROYED_EPOCH


def test_moves_are_not_repeated_even_to_the_same_key() -> None:
    resident = make_resident()
    record = opened_move(resident, now=at(9))
    grant = Grant(Purpose.MOVE, C1, ephemeral_key=E1)
    again = ask("move", requester=DEST, now=record.ready_at, claim_id=C1, ephemeral=E1, moves=[record],
                epoch=make_epoch().with_grant(grant))  # fmt: skip
    assert again.code == Code.ALREADY_RELEASED


def test_other_grants_do_not_use_up_the_runs() -> None:
    epoch = make_epoch(
        released=frozenset({Grant(Purpose.MOVE, C1, ephemeral_key=E2), Grant(Purpose.DISASTER, C2, ephemeral_key=E3)})
    )
    assert ask(epoch=epoch).allowed and not ask(epoch=epoch).repeat


def test_grants_and_requests_carry_one_ephemeral_key() -> None:
    for bad in (b"", b"k" * 31, b"k" * 33, "k" * 32):
        with pytest.raises(ValueError, match="ephemeral key"):
            Grant(Purpose.RUN, ephemeral_key=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="ephemeral key"):
            ReleaseFacts("run", RID, 7, HOST, at(6, 30), ephemeral_key=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most once per purpose and claim"):
        make_epoch(released=frozenset({Grant(Purpose.RUN, ephemeral_key=E1), Grant(Purpose.RUN, ephemeral_key=E2)}))


def test_order_of_run_checks() -> None:
    """Tombstone, then purpose, then who asks, then when, then the epoch."""
    worst: dict[str, Any] = {"now": at(12), "no_epoch": True}
    assert ask("nonsense", resident=make_resident(tombstoned=True), **worst).code == Code.TOMBSTONED
    assert ask("nonsense", **worst).code == Code.UNKNOWN_PURPOSE
    assert ask(requester=STRANGER, **worst).code == Code.NOT_HOST
    assert ask(**worst).code == Code.OUTSIDE_WINDOW
    run_grant = Grant(Purpose.RUN, ephemeral_key=E2)
    assert ask(epoch=make_epoch(destroyed=True, released=frozenset({run_grant}))).code == Code.DESTROYED_EPOCH


# Every purpose: unknown resident, unknown purpose, tombstone


@pytest.mark.parametrize("purpose", ["run", "move", "disaster"])
def test_unknown_resident(purpose: str) -> None:
    request = ReleaseFacts(purpose, RID, 7, HOST, at(6, 30), ephemeral_key=E1)
    decision = decide_release(request, None, make_epoch(), settings=SETTINGS)
    assert not decision.allowed and decision.code == Code.UNKNOWN_RESIDENT


@pytest.mark.parametrize("purpose", ["", "RUN", "runs", "restore", "CANARY-purpose"])
def test_unknown_purpose_is_refused_without_echoing_it(purpose: str) -> None:
    decision = ask(purpose)
    assert decision.code == Code.UNKNOWN_PURPOSE
    assert "CANARY" not in decision.reason


# R2: moves


def test_move_claim_opens_a_delay() -> None:
    resident = make_resident()
    decision, record = open_move(resident, now=at(9))
    assert decision.allowed and decision.code == Code.MOVE_OPENED
    assert record == MoveRecord(C1, HOST, DEST, at(9), at(9) + SETTINGS.move_delay_seconds)
    assert str(record.ready_at) in decision.reason


@pytest.mark.parametrize(
    ("host", "signers", "code"),
    [
        (HOST, frozenset({DEST}), Code.NOT_HOST),  # the host did not sign
        (STRANGER, frozenset({STRANGER, DEST}), Code.NOT_HOST),  # a claim made against another host
        (HOST, frozenset({HOST}), Code.NOT_DESTINATION),  # the destination did not sign
        (HOST, frozenset({HOST, STRANGER}), Code.NOT_DESTINATION),
    ],
)
def test_move_claim_needs_host_and_destination(host: bytes, signers: frozenset[bytes], code: Code) -> None:
    decision, record = open_move(make_resident(), host=host, signers=signers)
    assert (decision.allowed, decision.code, record) == (False, code, None)


def test_move_claim_to_the_host_itself_is_refused() -> None:
    decision, _ = open_move(make_resident(), destination=HOST, signers=frozenset({HOST}))
    assert decision.code == Code.NOT_DESTINATION


def test_move_claims_of_unknown_or_tombstoned_residents() -> None:
    facts = MoveClaimFacts(C1, RID, HOST, DEST, frozenset({HOST, DEST}), at(9))
    assert open_move_claim(facts, None, (), settings=SETTINGS)[0].code == Code.UNKNOWN_RESIDENT
    assert open_move(make_resident(tombstoned=True))[0].code == Code.TOMBSTONED


def test_move_release_after_the_delay_to_the_destination_only() -> None:
    resident = make_resident()
    record = opened_move(resident, now=at(9))
    moves = [record]
    pending = ask("move", requester=DEST, now=record.ready_at - 1, claim_id=C1, moves=moves)
    assert pending.code == Code.MOVE_PENDING and str(record.ready_at) in pending.reason
    ready = ask("move", requester=DEST, now=record.ready_at, claim_id=C1, moves=moves)
    assert (
        ready.allowed and ready.code == Code.MOVE_RELEASED and ready.grant == Grant(Purpose.MOVE, C1, ephemeral_key=E1)
    )
    for requester in (HOST, STRANGER, GUARDIANS[0]):
        assert ask("move", requester=requester, now=record.ready_at, claim_id=C1, moves=moves).code == (
            Code.NOT_DESTINATION
        )
    # Outside the run window too: a move does not wait for the host's schedule.
    assert not WINDOW.contains(record.ready_at, SETTINGS.window_grace_seconds)


def test_default_move_delay_is_a_day() -> None:
    record = opened_move(make_resident(), now=at(9))
    assert ask("move", requester=DEST, now=at(9, day=1) - 1, claim_id=C1, moves=[record]).code == Code.MOVE_PENDING
    assert ask("move", requester=DEST, now=at(9, day=1), claim_id=C1, moves=[record]).allowed


def test_move_release_once_per_epoch_per_move() -> None:
    resident = make_resident()
    first = opened_move(resident, now=at(9))
    released = make_epoch().with_grant(Grant(Purpose.MOVE, C1, ephemeral_key=E2))
    later = first.ready_at + 10
    assert ask("move", requester=DEST, now=later, claim_id=C1, moves=[first], epoch=released).code == (
        Code.ALREADY_RELEASED
    )
    # A later claim (this one superseding the first after its delay) may have the same epoch once more.
    second = opened_move(resident, moves=[first], claim_id=C2, now=later, destination=OTHER_DEST)
    moves = [first, second]
    decision = ask("move", requester=OTHER_DEST, now=second.ready_at, claim_id=C2, moves=moves, epoch=released)
    assert decision.allowed and decision.grant == Grant(Purpose.MOVE, C2, ephemeral_key=E1)


def test_move_release_without_a_current_claim() -> None:
    resident = make_resident()
    record = opened_move(resident, now=at(9))
    late = record.ready_at + 1
    assert ask("move", requester=DEST, now=late, claim_id=C2, moves=[record]).code == Code.NO_MOVE_CLAIM
    assert ask("move", requester=DEST, now=late, claim_id=b"", moves=[record]).code == Code.NO_MOVE_CLAIM
    assert ask("move", requester=DEST, now=late, claim_id=C1).code == Code.NO_MOVE_CLAIM
    # Once the destination is the host (it deposited a new epoch), the claim is over: it asks as the host.
    moved = make_resident(host_key=DEST)
    assert ask("move", requester=DEST, now=late, claim_id=C1, moves=[record], resident=moved).code == (
        Code.NO_MOVE_CLAIM
    )
    # A claim superseded by a later one is over too.
    second = opened_move(resident, moves=[record], claim_id=C2, now=late, destination=OTHER_DEST)
    assert ask("move", requester=DEST, now=late, claim_id=C1, moves=[record, second]).code == Code.NO_MOVE_CLAIM


def test_move_release_of_an_epoch_not_held_or_destroyed() -> None:
    record = opened_move(make_resident(), now=at(9))
    later = record.ready_at
    assert ask("move", requester=DEST, now=later, claim_id=C1, moves=[record], no_epoch=True).code == (
        Code.UNKNOWN_EPOCH
    )
    destroyed = make_epoch(destroyed=True)
    assert ask("move", requester=DEST, now=later, claim_id=C1, moves=[record], epoch=destroyed).code == (
        Code.DESTROYED_EPOCH
    )


@pytest.mark.parametrize("vetoer", [HOST, *GUARDIANS])
def test_veto_by_host_or_guardian_refuses_the_claim_for_good(vetoer: bytes) -> None:
    resident = make_resident()
    record = opened_move(resident, now=at(9))
    decision, vetoed = veto(resident, [record], by=vetoer, now=record.ready_at - 1)
    assert decision.allowed and decision.code == Code.VETO_RECORDED
    assert vetoed == dataclasses.replace(record, vetoed_by=vetoer, vetoed_at=record.ready_at - 1)
    for now in (record.ready_at, record.ready_at + 400 * DAY_SECONDS):
        assert ask("move", requester=DEST, now=now, claim_id=C1, moves=[vetoed]).code == Code.MOVE_VETOED
    assert open_move(resident, [vetoed], now=record.ready_at)[0].code == Code.MOVE_VETOED
    assert veto(resident, [vetoed], now=record.ready_at - 1)[0].code == Code.MOVE_VETOED


@pytest.mark.parametrize("vetoer", [DEST, STRANGER, NEW_HOST, OUTSIDER_GUARDIAN])
def test_veto_by_anyone_else_is_refused(vetoer: bytes) -> None:
    resident = make_resident()
    record = opened_move(resident, now=at(9))
    decision, vetoed = veto(resident, [record], by=vetoer, now=at(10))
    assert (decision.code, vetoed) == (Code.UNKNOWN_GUARDIAN, None)


def test_veto_only_during_the_delay() -> None:
    resident = make_resident()
    record = opened_move(resident, now=at(9))
    assert veto(resident, [record], now=record.ready_at - 1)[0].allowed
    decision, vetoed = veto(resident, [record], now=record.ready_at)
    assert (decision.code, vetoed) == (Code.VETO_TOO_LATE, None)


def test_veto_of_an_unknown_or_superseded_claim() -> None:
    resident = make_resident()
    assert veto(resident, [], now=at(10))[0].code == Code.NO_MOVE_CLAIM
    first = opened_move(resident, now=at(9))
    second = opened_move(resident, moves=[first], claim_id=C2, now=first.ready_at)
    assert veto(resident, [first, second], claim_id=C1, now=first.ready_at + 1)[0].code == Code.NO_MOVE_CLAIM
    assert veto(resident, [first, second], claim_id=C3, now=first.ready_at + 1)[0].code == Code.NO_MOVE_CLAIM
    tombstoned = make_resident(tombstoned=True)
    assert veto(tombstoned, [first], now=at(10))[0].code == Code.TOMBSTONED
    assert veto_move(VetoFacts(C1, RID, HOST, at(10)), None, [first])[0].code == Code.UNKNOWN_RESIDENT


def test_one_move_claim_at_a_time() -> None:
    resident = make_resident()
    first = opened_move(resident, now=at(9))
    decision, record = open_move(resident, [first], claim_id=C2, now=first.ready_at - 1, destination=OTHER_DEST)
    assert (decision.code, record) == (Code.MOVE_PENDING, None)
    # After the delay, or after a veto, a new claim supersedes it.
    assert open_move(resident, [first], claim_id=C2, now=first.ready_at)[0].allowed
    _, vetoed = veto(resident, [first], now=at(10))
    assert vetoed is not None
    assert open_move(resident, [vetoed], claim_id=C2, now=at(10))[0].allowed


def test_the_same_move_claim_again_changes_nothing() -> None:
    resident = make_resident()
    first = opened_move(resident, now=at(9))
    decision, record = open_move(resident, [first], now=at(11))
    assert decision.allowed and record == first  # the delay is not restarted by a retry
    second = opened_move(resident, moves=[first], claim_id=C2, now=first.ready_at)
    decision, record = open_move(resident, [first, second], now=first.ready_at + 5)
    assert (decision.code, record) == (Code.CLAIM_REPLAYED, None)


# R3: disasters


def test_disaster_claim_after_the_hosts_silence() -> None:
    resident = make_resident()
    decision, record = open_disaster(resident, now=DAY0 + SILENCE)
    assert decision.allowed and decision.code == Code.DISASTER_OPENED
    assert record == DisasterRecord(
        C1, HOST, NEW_HOST, frozenset(GUARDIANS[:2]), DAY0 + SILENCE, DAY0 + SILENCE + SETTINGS.disaster_wait_seconds
    )
    too_soon, none = open_disaster(resident, now=DAY0 + SILENCE - 1)
    assert (too_soon.code, none) == (Code.HOST_NOT_SILENT, None)


def test_default_silence_and_wait() -> None:
    resident = make_resident()
    assert open_disaster(resident, now=DAY0 + 30 * DAY_SECONDS - 1)[0].code == Code.HOST_NOT_SILENT
    record = opened_disaster(resident, now=DAY0 + 30 * DAY_SECONDS)
    week = record.opened_at + 7 * DAY_SECONDS
    assert ask("disaster", requester=NEW_HOST, now=week - 1, claim_id=C1, disasters=[record]).code == (
        Code.WAITING_PERIOD
    )
    assert ask("disaster", requester=NEW_HOST, now=week, claim_id=C1, disasters=[record]).allowed


@pytest.mark.parametrize(
    ("threshold", "signing", "code"),
    [
        (None, 1, Code.NOT_ENOUGH_GUARDIANS),  # a majority of three is two
        (None, 2, Code.DISASTER_OPENED),
        (3, 2, Code.NOT_ENOUGH_GUARDIANS),
        (3, 3, Code.DISASTER_OPENED),
        (1, 1, Code.DISASTER_OPENED),
    ],
)
def test_disaster_claim_needs_the_threshold_of_guardians(threshold: int | None, signing: int, code: Code) -> None:
    resident = make_resident(guardian_threshold=threshold)
    signers = frozenset({*GUARDIANS[:signing], NEW_HOST})
    assert open_disaster(resident, signers=signers)[0].code == code


def test_only_the_residents_own_guardians_count() -> None:
    resident = make_resident()
    # Guardians of other residents named by the same claim may sign it: they are not counted, nor refused.
    with_outsider = frozenset({GUARDIANS[0], OUTSIDER_GUARDIAN, STRANGER, NEW_HOST})
    decision, _ = open_disaster(resident, signers=with_outsider)
    assert decision.code == Code.NOT_ENOUGH_GUARDIANS and "1 of 3" in decision.reason
    assert open_disaster(resident, signers=frozenset({OUTSIDER_GUARDIAN, STRANGER, NEW_HOST}))[0].code == (
        Code.UNKNOWN_GUARDIAN
    )
    assert open_disaster(resident, signers=with_outsider | {GUARDIANS[2]})[0].allowed


def test_disaster_claim_refusals() -> None:
    resident = make_resident()
    assert open_disaster(make_resident(guardians=frozenset()))[0].code == Code.NO_GUARDIANS
    assert open_disaster(resident, old_host=STRANGER)[0].code == Code.NOT_HOST
    assert open_disaster(resident, new_host=HOST)[0].code == Code.NOT_NEW_HOST
    assert open_disaster(resident, signers=frozenset(GUARDIANS))[0].code == Code.NOT_NEW_HOST  # it did not sign
    assert open_disaster(make_resident(tombstoned=True))[0].code == Code.TOMBSTONED
    facts = DisasterClaimFacts(C1, RID, HOST, NEW_HOST, frozenset({*GUARDIANS, NEW_HOST}), DAY0 + SILENCE)
    assert open_disaster_claim(facts, None, (), settings=SETTINGS)[0].code == Code.UNKNOWN_RESIDENT


def test_disaster_release_after_the_wait_to_the_new_host_only() -> None:
    resident = make_resident()
    record = opened_disaster(resident)
    disasters = [record]
    assert ask("disaster", requester=NEW_HOST, now=record.ready_at - 1, claim_id=C1, disasters=disasters).code == (
        Code.WAITING_PERIOD
    )
    decision = ask("disaster", requester=NEW_HOST, now=record.ready_at, claim_id=C1, disasters=disasters)
    assert decision.allowed and decision.code == Code.DISASTER_RELEASED
    assert decision.grant == Grant(Purpose.DISASTER, C1, ephemeral_key=E1)
    for requester in (HOST, STRANGER, *GUARDIANS):
        assert ask("disaster", requester=requester, now=record.ready_at, claim_id=C1, disasters=disasters).code == (
            Code.NOT_NEW_HOST
        )
    assert decision.grant is not None
    twice = make_epoch().with_grant(decision.grant)
    assert ask(
        "disaster", requester=NEW_HOST, now=record.ready_at + 9, claim_id=C1, disasters=disasters, epoch=twice,
        ephemeral=E2,
    ).code == (Code.ALREADY_RELEASED)  # fmt: skip
    ready: dict[str, Any] = {"requester": NEW_HOST, "now": record.ready_at, "claim_id": C1, "disasters": disasters}
    assert ask("disaster", no_epoch=True, **ready).code == Code.UNKNOWN_EPOCH
    assert ask("disaster", epoch=make_epoch(destroyed=True), **ready).code == Code.DESTROYED_EPOCH


def test_a_disaster_release_is_repeated_to_its_own_key_only() -> None:
    """A restore that crashed after the keepers released resumes under the same claim, with the key it kept: the
    share goes again to that key (logged as a repeat, nothing new recorded), never to another, and only while the
    claim would release at all."""
    resident = make_resident()
    record = opened_disaster(resident)
    ready: dict[str, Any] = {"requester": NEW_HOST, "claim_id": C1, "disasters": [record]}
    first = ask("disaster", now=record.ready_at, ephemeral=E1, **ready)
    assert first.allowed and not first.repeat and first.grant is not None
    released = make_epoch().with_grant(first.grant)
    again = ask("disaster", now=record.ready_at + 86_400, ephemeral=E1, epoch=released, **ready)
    assert (again.allowed, again.code, again.grant, again.repeat) == (True, Code.DISASTER_RELEASED, first.grant, True)
    assert "repeat" in again.reason and released.with_grant(again.grant) == released
    assert ask("disaster", now=record.ready_at, ephemeral=E2, epoch=released, **ready).code == Code.ALREADY_RELEASED
    other = {**ready, "requester": STRANGER}
    assert ask("disaster", now=record.ready_at, ephemeral=E1, epoch=released, **other).code == Code.NOT_NEW_HOST
    heard = make_resident(last_host_contact=record.opened_at + 5)  # the old host came back: no repeat either
    assert ask("disaster", now=record.ready_at, ephemeral=E1, epoch=released, resident=heard, **ready).code == (
        Code.CLAIM_CANCELLED
    )
    destroyed = make_epoch(destroyed=True, released=released.released)
    assert ask("disaster", now=record.ready_at, ephemeral=E1, epoch=destroyed, **ready).code == Code.DESTROYED_EPOCH


def test_disaster_release_without_guardians_or_a_current_claim() -> None:
    resident = make_resident()
    record = opened_disaster(resident)
    late = record.ready_at
    no_guardians = make_resident(guardians=frozenset())
    assert ask(
        "disaster", requester=NEW_HOST, now=late, claim_id=C1, disasters=[record], resident=no_guardians
    ).code == (Code.NO_GUARDIANS)
    assert ask("disaster", requester=NEW_HOST, now=late, claim_id=C2, disasters=[record]).code == (
        Code.NO_DISASTER_CLAIM
    )
    rehomed = make_resident(host_key=NEW_HOST, last_host_contact=late)
    assert ask("disaster", requester=NEW_HOST, now=late, claim_id=C1, disasters=[record], resident=rehomed).code == (
        Code.NO_DISASTER_CLAIM
    )


def test_host_contact_after_the_claim_cancels_it() -> None:
    resident = make_resident()
    record = opened_disaster(resident)
    for contact in (record.opened_at, record.opened_at + 1, record.ready_at - 1):
        heard = make_resident(last_host_contact=contact)
        decision = ask(
            "disaster", requester=NEW_HOST, now=record.ready_at, claim_id=C1, disasters=[record], resident=heard
        )
        assert decision.code == Code.CLAIM_CANCELLED and str(contact) in decision.reason
        # Neither can the same claim be opened again, even after another long silence.
        again, _ = open_disaster(heard, [record], now=contact + SILENCE + 1)
        assert again.code == Code.CLAIM_CANCELLED
    # A fresh claim may follow a cancelled one once the host is silent again.
    heard = make_resident(last_host_contact=record.opened_at + 5)
    assert open_disaster(heard, [record], claim_id=C2, now=record.opened_at + 5 + SILENCE - 1)[0].code == (
        Code.HOST_NOT_SILENT
    )
    assert open_disaster(heard, [record], claim_id=C2, now=record.opened_at + 5 + SILENCE)[0].allowed


def test_one_disaster_claim_waits_at_a_time() -> None:
    resident = make_resident()
    first = opened_disaster(resident)
    decision, record = open_disaster(resident, [first], claim_id=C2, now=first.ready_at - 1)
    assert (decision.code, record) == (Code.WAITING_PERIOD, None)
    second = opened_disaster(resident, disasters=[first], claim_id=C2, now=first.ready_at, new_host=OTHER_DEST)
    disasters = [first, second]
    assert ask("disaster", requester=NEW_HOST, now=second.ready_at, claim_id=C1, disasters=disasters).code == (
        Code.NO_DISASTER_CLAIM
    )
    assert ask("disaster", requester=OTHER_DEST, now=second.ready_at, claim_id=C2, disasters=disasters).allowed
    replay, _ = open_disaster(resident, disasters, claim_id=C1, now=second.ready_at)
    assert replay.code == Code.CLAIM_REPLAYED
    retry, same = open_disaster(resident, disasters, claim_id=C2, new_host=OTHER_DEST, now=second.ready_at)
    assert retry.allowed and same == second


# The worked timeline of the docs, replayed


def test_worked_timeline() -> None:
    d, e, n = DEST, OTHER_DEST, NEW_HOST
    resident = make_resident()  # host H, window 06:00 for an hour, three guardians, threshold a majority
    epochs = {7: make_epoch(epoch=7), 8: make_epoch(epoch=8)}
    moves: list[MoveRecord] = []

    def request(
        purpose: str, requester: bytes, number: int, now: int, claim_id: bytes = b"", ephemeral: bytes = E1
    ) -> Code:
        facts = ReleaseFacts(purpose, RID, number, requester, now, claim_id, ephemeral_key=ephemeral)
        decision = decide_release(facts, resident, epochs[number], moves=moves, settings=SETTINGS)
        if decision.grant is not None:
            epochs[number] = epochs[number].with_grant(decision.grant)
        return decision.code

    assert request("run", HOST, 7, at(5, 54, 59)) == Code.OUTSIDE_WINDOW
    assert request("run", HOST, 7, at(6, 30), ephemeral=E1) == Code.RUN_RELEASED
    assert request("run", HOST, 7, at(6, 31), ephemeral=E2) == Code.ALREADY_RELEASED
    assert request("run", HOST, 7, at(6, 40), ephemeral=E1) == Code.RUN_RELEASED  # H crashed and retries
    assert epochs[7].released == frozenset({Grant(Purpose.RUN, ephemeral_key=E1)})
    decision, record = open_move(resident, moves, claim_id=C1, now=at(9), destination=d)
    assert decision.code == Code.MOVE_OPENED and record is not None and record.ready_at == at(9, day=1)
    moves.append(record)
    assert open_move(resident, moves, claim_id=C2, now=at(10), destination=e)[0].code == Code.MOVE_PENDING
    assert request("move", d, 7, at(8, 59, 59, day=1), C1) == Code.MOVE_PENDING
    assert veto(resident, moves, by=GUARDIANS[0], now=at(9, day=1))[0].code == Code.VETO_TOO_LATE
    assert request("run", HOST, 8, at(6, 30, day=1)) == Code.RUN_RELEASED
    assert request("move", d, 8, at(9, day=1), C1) == Code.MOVE_RELEASED
    assert request("move", d, 8, at(9, day=1), C1) == Code.ALREADY_RELEASED
    assert request("move", HOST, 8, at(9, day=1), C1) == Code.NOT_DESTINATION
    # Had G1 vetoed a second before the ready time, every later request under C1 would be refused.
    decision, vetoed = veto(resident, moves, by=GUARDIANS[0], now=at(8, 59, 59, day=1))
    assert decision.code == Code.VETO_RECORDED and vetoed is not None
    assert decide_release(
        ReleaseFacts("move", RID, 8, d, at(9, day=5), C1, ephemeral_key=E1),
        resident,
        make_epoch(epoch=8),
        moves=[vetoed],
        settings=SETTINGS,
    ).code == (Code.MOVE_VETOED)
    # H goes quiet after its run of day 1.
    quiet = make_resident(last_host_contact=at(6, 30, day=1))
    signed = frozenset({GUARDIANS[0], GUARDIANS[1], n})
    assert open_disaster(quiet, now=at(6, 30, day=31) - 1, signers=signed)[0].code == Code.HOST_NOT_SILENT
    decision, claim = open_disaster(quiet, now=at(6, 30, day=31), signers=signed)
    assert decision.code == Code.DISASTER_OPENED and claim is not None and claim.ready_at == at(6, 30, day=38)
    ask_n: dict[str, Any] = {"requester": n, "claim_id": C1, "disasters": [claim], "epoch": make_epoch(epoch=7)}
    assert ask("disaster", now=claim.ready_at - 1, resident=quiet, **ask_n).code == Code.WAITING_PERIOD
    assert ask("disaster", now=claim.ready_at, resident=quiet, **ask_n).code == Code.DISASTER_RELEASED
    heard = make_resident(last_host_contact=at(12, day=33))
    assert ask("disaster", now=claim.ready_at, resident=heard, **ask_n).code == Code.CLAIM_CANCELLED


# Codes: explained and documented


def test_every_code_is_explained_in_its_own_words() -> None:
    sentences = [explain(code) for code in Code]
    assert len(set(sentences)) == len(Code)
    for sentence in sentences:
        assert sentence[0].isupper() and sentence.endswith(".")
    assert explain("not_host") == explain(Code.NOT_HOST)
    with pytest.raises(ValueError, match="not a release policy code"):
        explain("no_such_code")


def _policy_doc() -> str:
    """The "Release policy" section of docs/custody.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "custody.md").read_text()
    assert "## Release policy" in text, "no Release policy section in docs/custody.md"
    section = text.split("## Release policy", 1)[1]
    return re.split(r"\n## ", section, maxsplit=1)[0]


def test_every_code_and_setting_is_documented() -> None:
    doc = _policy_doc()
    for code in Code:
        assert f"`{code.value}`" in doc, code
    for spec in dataclasses.fields(PolicySettings):
        assert f"`{spec.name}`" in doc, spec.name
        assert f"`{getattr(SETTINGS, spec.name)}`" in doc, spec.name


# Properties over arbitrary facts. No deadlines: generating the facts, not the policy, takes the time, and how
# long depends on the machine's load.

keys = st.sampled_from(KEYS)
claim_ids = st.sampled_from([C1, C2, C3, b""])
times = st.integers(DAY0 - 40 * DAY_SECONDS, DAY0 + 80 * DAY_SECONDS)
windows = st.builds(RunWindow, st.integers(0, DAY_SECONDS - 1), st.integers(1, DAY_SECONDS))
ephemerals = st.sampled_from([E1, E2])
grants = st.one_of(
    st.builds(Grant, st.just(Purpose.RUN), ephemeral_key=ephemerals),
    st.builds(
        Grant, st.sampled_from([Purpose.MOVE, Purpose.DISASTER]), st.sampled_from([C1, C2]), ephemeral_key=ephemerals
    ),
)
held_epochs = st.builds(
    EpochFacts,
    st.just(7),
    st.sampled_from([False, False, True]),
    st.lists(grants, max_size=2, unique_by=lambda grant: grant.slot).map(frozenset),
)
epochs = st.one_of(held_epochs, held_epochs, st.none())


def mostly(*likely: bytes, among: Sequence[bytes] = KEYS) -> st.SearchStrategy[bytes]:
    """One of `likely` three times out of four (when there are any), else any of `among`."""
    return st.sampled_from([*likely] * 3 * len(among) + [*among]) if likely else st.sampled_from(among)


@st.composite
def residents(draw: st.DrawFn, tombstoned: bool, unguarded: bool = True) -> ResidentFacts:
    guardians = draw(st.frozensets(keys, min_size=0 if unguarded else 1, max_size=4))
    threshold = draw(st.none() | st.integers(1, max(len(guardians), 1))) if guardians else None
    return ResidentFacts(RID, draw(keys), draw(windows), draw(times), guardians, threshold, tombstoned)


@st.composite
def moves(draw: st.DrawFn, host: bytes = HOST) -> list[MoveRecord]:
    """Move records, made against `host` more often than not, so that some are current."""
    records = []
    for claim_id in draw(st.lists(st.sampled_from([C1, C2, C3]), min_size=1, max_size=3, unique=True)):
        opened, delay = draw(times), draw(st.integers(1, 2 * DAY_SECONDS))
        vetoed = draw(st.one_of(st.none(), st.none(), st.tuples(keys, st.integers(opened, opened + delay))))
        by, when = vetoed or (None, None)
        made_against = draw(mostly(host))
        records.append(MoveRecord(claim_id, made_against, draw(keys), opened, opened + delay, by, when))
    return records


@st.composite
def disasters(draw: st.DrawFn, host: bytes = HOST) -> list[DisasterRecord]:
    """Disaster records, displacing `host` more often than not, so that some are current."""
    records = []
    for claim_id in draw(st.lists(st.sampled_from([C1, C2, C3]), min_size=1, max_size=3, unique=True)):
        opened, wait = draw(times), draw(st.integers(1, 10 * DAY_SECONDS))
        signers, displaced = draw(st.frozensets(keys)), draw(mostly(host))
        records.append(DisasterRecord(claim_id, displaced, draw(keys), signers, opened, opened + wait))
    return records


purposes = st.sampled_from([*Purpose, "", "Run", "restore"])


@settings(max_examples=150, deadline=None)
@given(
    resident=residents(tombstoned=True),
    epoch=epochs,
    move_records=moves(),
    disaster_records=disasters(),
    purpose=purposes,
    requester=keys,
    claim_id=claim_ids,
    now=times,
    signers=st.frozensets(keys),
    other=keys,
)
def test_a_tombstoned_resident_is_never_released(
    resident: ResidentFacts,
    epoch: EpochFacts | None,
    move_records: list[MoveRecord],
    disaster_records: list[DisasterRecord],
    purpose: str,
    requester: bytes,
    claim_id: bytes,
    now: int,
    signers: frozenset[bytes],
    other: bytes,
) -> None:
    request = ReleaseFacts(purpose, RID, 7, requester, now, claim_id, ephemeral_key=E1)
    decision = decide_release(
        request, resident, epoch, moves=move_records, disasters=disaster_records, settings=SETTINGS
    )
    assert (decision.allowed, decision.code, decision.grant) == (False, Code.TOMBSTONED, None)
    cid = claim_id or C1
    move = MoveClaimFacts(cid, RID, requester, other, signers, now)
    assert open_move_claim(move, resident, move_records, settings=SETTINGS) == (decision, None)
    assert veto_move(VetoFacts(cid, RID, requester, now), resident, move_records) == (decision, None)
    disaster = DisasterClaimFacts(cid, RID, requester, other, signers, now)
    assert open_disaster_claim(disaster, resident, disaster_records, settings=SETTINGS) == (decision, None)


@pytest.mark.parametrize("purpose", list(Purpose))
@settings(max_examples=150, deadline=None)
@given(resident=residents(tombstoned=False, unguarded=False), epoch=epochs, data=st.data())
def test_whoever_gets_a_share_is_entitled_to_it(
    purpose: Purpose, resident: ResidentFacts, epoch: EpochFacts | None, data: st.DataObject
) -> None:
    """Over arbitrary facts, an allowed release always meets its rule, stated here from the outside. Requesters,
    claim ids and times are drawn mostly from the latest records, so that every rule allows now and then."""
    move_records = data.draw(moves(resident.host_key))
    disaster_records = data.draw(disasters(resident.host_key))
    latest: MoveRecord | DisasterRecord | None = None
    entitled = resident.host_key
    if purpose == Purpose.MOVE:
        latest = move_records[-1]
        entitled = latest.destination_key
    elif purpose == Purpose.DISASTER:
        latest = disaster_records[-1]
        entitled = latest.new_host_key
        quiet = st.integers(latest.opened_at - 2 * SILENCE, latest.opened_at - 1)  # no contact since the claim
        contact = data.draw(quiet | st.just(resident.last_host_contact))
        resident = dataclasses.replace(resident, last_host_contact=max(contact, 0))
    requester = data.draw(mostly(entitled))
    claim_id = data.draw(mostly(latest.claim_id, among=(C1, C2, C3, b"")) if latest else claim_ids)
    ready = DAY0 + resident.window.start_second if latest is None else latest.ready_at
    now = data.draw(st.builds(int.__add__, st.just(ready), st.integers(-3, 3 * DAY_SECONDS)) | times)
    ephemeral = data.draw(ephemerals)
    request = ReleaseFacts(purpose, RID, 7, requester, now, claim_id, ephemeral_key=ephemeral)
    decision = decide_release(
        request, resident, epoch, moves=move_records, disasters=disaster_records, settings=SETTINGS
    )
    event(f"{purpose}: {decision.code}")
    if purpose == "run" and requester != resident.host_key:
        assert decision.code == Code.NOT_HOST
    if not decision.allowed:
        assert decision.grant is None
        return
    assert epoch is not None and not epoch.destroyed
    assert decision.grant is not None and decision.grant.ephemeral_key == ephemeral
    if decision.repeat:  # only a run or a disaster, and only to the key its grant was given to
        assert purpose in ("run", "disaster") and decision.grant in epoch.released
    else:
        assert epoch.granted(decision.grant) is None
    assert decision.grant.purpose == purpose
    if purpose == "run":
        assert requester == resident.host_key
        assert resident.window.contains(now, SETTINGS.window_grace_seconds)
    elif purpose == "move":
        last = move_records[-1]
        assert (last.claim_id, last.destination_key, last.host_key) == (claim_id, requester, resident.host_key)
        assert last.vetoed_at is None and now >= last.ready_at
    else:
        last_claim = disaster_records[-1]
        assert resident.guardians
        assert (last_claim.claim_id, last_claim.new_host_key) == (claim_id, requester)
        assert last_claim.old_host_key == resident.host_key
        assert resident.last_host_contact < last_claim.opened_at and last_claim.ready_at <= now


@settings(max_examples=100, deadline=None)
@given(
    window=windows,
    steps=st.lists(
        st.tuples(
            st.sampled_from([HOST, HOST, DEST, STRANGER]),
            st.integers(1, 3),
            st.sampled_from([E1, E2, E3]),
            st.integers(0, 5 * DAY_SECONDS),
        ),
        max_size=40,
    ),
)
def test_runs_get_each_epoch_at_most_once(window: RunWindow, steps: list[tuple[bytes, int, bytes, int]]) -> None:
    """Any sequence of run requests against a model: allowed exactly when the host asks inside the window for an
    epoch not yet released to a run, or released to a run with the very ephemeral key it asks with again."""
    resident = make_resident(window=window)
    held = {n: EpochFacts(n) for n in (1, 2, 3)}
    given_to: dict[int, bytes] = {}
    now = DAY0
    for requester, number, ephemeral, wait in steps:
        now += wait
        decision = decide_release(
            ReleaseFacts("run", RID, number, requester, now, ephemeral_key=ephemeral),
            resident,
            held[number],
            settings=SETTINGS,
        )
        expected = (
            requester == HOST
            and window.contains(now, SETTINGS.window_grace_seconds)
            and given_to.get(number, ephemeral) == ephemeral
        )
        assert decision.allowed is expected, decision
        assert decision.repeat is (expected and number in given_to)
        if decision.allowed:
            assert decision.grant is not None
            held[number] = held[number].with_grant(decision.grant)
            given_to[number] = ephemeral


@settings(max_examples=200, deadline=None)
@given(
    window=windows,
    earlier=st.lists(grants, max_size=1),
    steps=st.lists(
        st.tuples(
            st.sampled_from([HOST, HOST, HOST, DEST, STRANGER]),
            st.sampled_from([E1, E2, E3]),
            st.integers(0, DAY_SECONDS),
            st.sampled_from([False] * 9 + [True]),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_one_epoch_is_released_for_runs_to_at_most_one_ephemeral_key(
    window: RunWindow, earlier: list[Grant], steps: list[tuple[bytes, bytes, int, bool]]
) -> None:
    """Whatever run requests come for one epoch, in whatever order, from whomever, whenever, and whatever else
    it was released under: every share that goes out is sealed to the key its request carries, and at most one
    distinct ephemeral key ever gets a share. Each allowed grant is recorded as the keeper records it."""
    resident = make_resident(window=window)
    epoch = make_epoch(released=frozenset(earlier))
    prior_run = next((grant.ephemeral_key for grant in earlier if grant.purpose == Purpose.RUN), None)
    shared_with: set[bytes] = set()
    now = DAY0
    for requester, ephemeral, wait, destroy in steps:
        now += wait
        if destroy:
            epoch = dataclasses.replace(epoch, destroyed=True)
        decision = decide_release(
            ReleaseFacts("run", RID, 7, requester, now, ephemeral_key=ephemeral), resident, epoch, settings=SETTINGS
        )
        event(f"run: {decision.code}{' (repeat)' if decision.repeat else ''}")
        if decision.allowed:
            assert decision.grant is not None and decision.grant.ephemeral_key == ephemeral
            shared_with.add(ephemeral)
            epoch = epoch.with_grant(decision.grant)
    assert len(shared_with | ({prior_run} if prior_run else set())) <= 1
    assert len([grant for grant in epoch.released if grant.purpose == Purpose.RUN]) <= 1


@settings(max_examples=100, deadline=None)
@given(
    veto_after=st.integers(0, DAY_SECONDS - 1),
    vetoer=st.sampled_from([HOST, *GUARDIANS]),
    later=st.lists(
        st.tuples(keys, st.integers(0, 60 * DAY_SECONDS), st.sampled_from(["move", "run", "disaster"])), max_size=20
    ),
)
def test_a_vetoed_move_never_releases(veto_after: int, vetoer: bytes, later: list[tuple[bytes, int, str]]) -> None:
    resident = make_resident()
    record = opened_move(resident, now=at(9))
    _, vetoed = veto(resident, [record], by=vetoer, now=at(9) + veto_after)
    assert vetoed is not None
    for requester, offset, purpose in later:
        now = at(9) + offset
        decision = ask(purpose, requester=requester, now=now, claim_id=C1, moves=[vetoed])
        assert not (decision.allowed and purpose == "move")
        if purpose == "move" and requester == DEST:
            assert decision.code == Code.MOVE_VETOED


@settings(max_examples=100, deadline=None)
@given(
    contact_after=st.integers(0, 20 * DAY_SECONDS),
    ask_after=st.integers(0, 60 * DAY_SECONDS),
    requester=keys,
)
def test_any_contact_after_a_disaster_claim_cancels_it(contact_after: int, ask_after: int, requester: bytes) -> None:
    resident = make_resident()
    record = opened_disaster(resident)
    contact = record.opened_at + contact_after
    heard = make_resident(last_host_contact=contact)
    now = contact + ask_after
    decision = ask("disaster", requester=requester, now=now, claim_id=C1, disasters=[record], resident=heard)
    assert not decision.allowed
    if requester == NEW_HOST:
        assert decision.code == Code.CLAIM_CANCELLED
    # Without the contact, the new host gets the share once the wait is over.
    unheard = ask("disaster", requester=NEW_HOST, now=now, claim_id=C1, disasters=[record])
    assert unheard.allowed is (now >= record.ready_at)


def test_the_new_host_of_a_ready_claim_may_have_the_displaced_host_s_epochs_destroyed() -> None:
    resident = make_resident()
    record = opened_disaster(resident)

    def order(signer: bytes = NEW_HOST, *, now: int = record.ready_at, contact: int = DAY0, **kw: Any) -> Decision:
        facts = DisplacedDestroyFacts(RID, HOST, signer, contact, now)
        return decide_displaced_destroy(facts, kw.get("resident", resident), kw.get("disasters", [record]))

    allowed = order()
    assert (allowed.allowed, allowed.code) == (True, Code.DISPLACED_DESTROYED)
    assert order(STRANGER).code == Code.NO_DISASTER_CLAIM  # only the new host the claim names
    assert order(now=record.ready_at - 1).code == Code.WAITING_PERIOD
    assert order(contact=record.opened_at).code == Code.CLAIM_CANCELLED  # the host was heard from: for good
    assert order(disasters=[]).code == Code.NO_DISASTER_CLAIM
    later = dataclasses.replace(record, claim_id=C2, new_host_key=OTHER_DEST, opened_at=record.ready_at)
    assert order(disasters=[record, later]).code == Code.NO_DISASTER_CLAIM  # superseded: the later claim decides
    assert order(resident=make_resident(tombstoned=True)).code == Code.TOMBSTONED
    # Once the new host deposited (it is the registered host), the claim is no longer current; still allowed.
    assert order(resident=make_resident(host_key=NEW_HOST)).allowed
    assert explain(Code.DISPLACED_DESTROYED).startswith("The displaced host's epoch was destroyed")
