"""Strangers cannot grow a keeper's log without bound: past a burst per key, and past a burst shared by all
strangers, their release-policy requests are answered 429 `rate_limited`, not decided and not logged, only
counted (in `/healthz` and `ftm-keeper status`); hosts and guardians are never limited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from ftm.config.keepersettings import KeeperSettings, KeeperStrangersSettings, load_keeper_settings
from ftm.config.loading import SettingsError
from ftm.federation.clock import FakeClock
from ftm.federation.identity import SigningKey, generate_inbox_secret, inbox_public_key
from ftm.keeper import protocol
from ftm.keeper.daemon import Keeper
from ftm.keeper.protocol import PROTOCOL_VERSION, ReleaseRequest, Veto
from ftm.keeper.statusreport import add_live_facts, print_status, status_report
from ftm.keeper.strangers import stranger_rates
from tests.keeper.keeperparties import Answer, Epoch, Party, deal_epoch, deliver, log_entries, running_keeper

PER_KEY = 4
ALL = 10
FLOOD = 30  # requests per flooding key: bounded, and well past its burst


def _settings(*, burst_per_key: int = PER_KEY, burst_all: int = ALL) -> KeeperSettings:
    settings = load_keeper_settings(None, {})
    strangers = KeeperStrangersSettings(
        burst_per_key=burst_per_key, per_hour_per_key=1, burst_all=burst_all, per_hour_all=60
    )
    return replace(settings, strangers=strangers)


@pytest.fixture
async def site(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Keeper, TestServer]]:
    async with running_keeper(tmp_path / "keeper", clock, _settings()) as opened:
        yield opened


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
def make_party(
    site: tuple[Keeper, TestServer], session: aiohttp.ClientSession, clock: FakeClock
) -> Callable[[], Party]:
    keeper, server = site
    return lambda: Party(SigningKey.generate(), clock, server, keeper.key.public_key, session)


async def _host(keeper: Keeper, make_party: Callable[[], Party]) -> Party:
    host = make_party()
    await keeper.add_host(host.public_key, "http://127.0.0.1:9", "registration-1", via="manual")
    return host


async def _ask(requester: Party, epoch: Epoch) -> Answer:
    request = ReleaseRequest(
        PROTOCOL_VERSION, epoch.resident_id, epoch.epoch, "run", inbox_public_key(generate_inbox_secret()), b""
    )
    return await requester.send(protocol.PATH_RELEASE, request)


async def _health(session: aiohttp.ClientSession, server: TestServer) -> dict[str, int]:
    async with session.get(server.make_url("/healthz")) as answer:
        counts: dict[str, int] = (await answer.json())["strangers"]
        return counts


async def test_a_flooding_stranger_gets_429_after_its_burst_and_the_log_stops_growing(
    site: tuple[Keeper, TestServer],
    make_party: Callable[[], Party],
    session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    keeper, server = site
    host = await _host(keeper, make_party)
    epoch = deal_epoch(keeper.key.public_key)
    await deliver(host, epoch)
    stranger = make_party()
    before = len(await log_entries(keeper))

    answers = []
    for _ in range(FLOOD):
        answers.append(await _ask(stranger, epoch))
        if len(answers) == PER_KEY + 1:
            # The host's own run goes through in the middle of the flood, and its refusals are still its own.
            granted = await _ask(host, epoch)
            assert granted.status == 200, granted.body
    statuses = [(a.status, a.error()) for a in answers]
    assert statuses == [(403, "not_host")] * PER_KEY + [(429, "rate_limited")] * (FLOOD - PER_KEY)

    logged = [e.kind for e in await log_entries(keeper)][before:]
    assert logged.count("release_refused") == PER_KEY  # the flood's excess left no trace in the log
    assert logged.count("release_granted") == 1
    assert await _health(session, server) == {"rate_limited": FLOOD - PER_KEY, "keys_tracked": 1}

    # Its bucket refills on the keeper's clock: an hour later one more request is decided (and logged).
    clock.advance(3600)
    assert (await _ask(stranger, epoch)).error() == "not_host"
    assert (await _ask(stranger, epoch)).error() == "rate_limited"
    assert len(await log_entries(keeper)) == before + PER_KEY + 2


async def test_many_strangers_together_are_capped_and_known_parties_are_not(
    site: tuple[Keeper, TestServer],
    make_party: Callable[[], Party],
    session: aiohttp.ClientSession,
) -> None:
    keeper, server = site
    host = await _host(keeper, make_party)
    guardian = make_party()
    epoch = deal_epoch(keeper.key.public_key, guardians=(guardian.key,), guardian_threshold=1)
    await deliver(host, epoch)
    before = len(await log_entries(keeper))

    # Fresh keys, each well inside its own burst: the shared bucket stops them after ALL requests in total.
    strangers = [make_party() for _ in range(ALL)]
    answers = [await _ask(s, epoch) for s in strangers for _ in range(2)]
    assert [a.status for a in answers] == [403] * ALL + [429] * ALL
    assert (await _ask(make_party(), epoch)).error() == "rate_limited"  # a key never seen is limited too

    # A guardian's vetoes of a claim that does not exist are refused and logged however many come: it is known.
    # So are the host's: neither spends from the strangers' buckets.
    logged = [e.kind for e in await log_entries(keeper)][before:]
    assert logged.count("release_refused") == ALL
    veto = Veto(PROTOCOL_VERSION, b"\x07" * 32)
    for _ in range(PER_KEY + ALL):
        assert (await guardian.send(protocol.PATH_VETO, veto)).error() == "no_move_claim"
    assert (await _ask(host, epoch)).status == 200
    for _ in range(PER_KEY + ALL):  # the host asking again with other keys: refused and logged, every time
        assert (await _ask(host, epoch)).error() == "already_released"
    logged = [e.kind for e in await log_entries(keeper)][before:]
    assert logged.count("release_refused") == ALL + PER_KEY + ALL
    assert await _health(session, server) == {"rate_limited": ALL + 1, "keys_tracked": ALL + 1}

    report = await status_report(keeper, holdings=False)
    report["listen"] = str(server.make_url("")).rstrip("/")
    await asyncio.to_thread(add_live_facts, report)  # what `ftm-keeper status` does; blocking, so off the loop
    assert report["listening"] is True
    assert report["strangers"] == {"rate_limited": ALL + 1, "keys_tracked": ALL + 1}


async def test_the_status_report_says_it_when_the_keeper_is_not_running(
    tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_keeper(tmp_path / "keeper", clock, _settings()) as (keeper, _):
        report = await status_report(keeper)
    report["listen"] = "http://127.0.0.1:9"  # nothing listens there
    await asyncio.to_thread(add_live_facts, report)
    assert (report["listening"], report["strangers"]) == (False, None)
    print_status(report)
    assert "rate-limited" not in capsys.readouterr().out


def test_the_strangers_section_loads_from_the_environment_and_rejects_nonsense() -> None:
    settings = load_keeper_settings(
        None, {"FTM_KEEPER_STRANGERS_BURST_PER_KEY": "3", "FTM_KEEPER_STRANGERS_PER_HOUR_ALL": "7200"}
    )
    per_key, overall = stranger_rates(settings.strangers)
    assert (per_key.burst, per_key.per_second) == (3, 6 / 3600)
    assert (overall.burst, overall.per_second) == (100, 2.0)
    with pytest.raises(SettingsError, match="at least 1"):
        load_keeper_settings(None, {"FTM_KEEPER_STRANGERS_BURST_ALL": "0"})
