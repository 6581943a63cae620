"""A stranger's `429 rate_limited` says when to come back: `Retry-After` is the whole seconds (rounded up, at least
1) until both of its buckets (its own and the one all strangers share) would let the same request through, on the
keeper's clock; asking again then is decided, not limited. Other answers carry no `Retry-After`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from ftm.config.keepersettings import KeeperStrangersSettings, load_keeper_settings
from ftm.federation.clock import FakeClock
from ftm.federation.identity import SigningKey, generate_inbox_secret, inbox_public_key
from ftm.federation.ratelimits import Rate, TokenBuckets
from ftm.keeper import protocol
from ftm.keeper.daemon import Keeper
from ftm.keeper.protocol import PROTOCOL_VERSION, ReleaseRequest
from tests.keeper.keeperparties import Answer, Epoch, Party, deal_epoch, deliver, running_keeper

PER_KEY, PER_KEY_EVERY = 3, 3600  # a stranger's burst, and one token back an hour
ALL, ALL_EVERY = 5, 60  # all strangers' burst, and one token back a minute


@pytest.fixture
async def site(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Keeper, TestServer]]:
    settings = load_keeper_settings(None, {})
    strangers = KeeperStrangersSettings(burst_per_key=PER_KEY, per_hour_per_key=1, burst_all=ALL, per_hour_all=60)
    async with running_keeper(tmp_path / "keeper", clock, replace(settings, strangers=strangers)) as opened:
        yield opened


@pytest.fixture
async def parties(
    site: tuple[Keeper, TestServer], clock: FakeClock
) -> AsyncIterator[tuple[Callable[[], Party], Epoch]]:
    """A maker of strangers, and an epoch a host delivered (what they ask for: each is refused `not_host`)."""
    keeper, server = site
    async with aiohttp.ClientSession() as session:

        def make() -> Party:
            return Party(SigningKey.generate(), clock, server, keeper.key.public_key, session)

        host = make()
        await keeper.add_host(host.public_key, "http://127.0.0.1:9", "registration-1", via="manual")
        epoch = deal_epoch(keeper.key.public_key)
        await deliver(host, epoch)
        yield make, epoch


async def ask(requester: Party, epoch: Epoch) -> Answer:
    request = ReleaseRequest(
        PROTOCOL_VERSION, epoch.resident_id, epoch.epoch, "run", inbox_public_key(generate_inbox_secret()), b""
    )
    return await requester.send(protocol.PATH_RELEASE, request)


def retry_after(answer: Answer) -> int:
    assert (answer.status, answer.error()) == (429, "rate_limited")
    return int(answer.headers["Retry-After"])


async def test_a_stranger_past_its_burst_is_told_when_its_bucket_admits_it_again(
    parties: tuple[Callable[[], Party], Epoch], clock: FakeClock
) -> None:
    make, epoch = parties
    stranger = make()
    decided = [await ask(stranger, epoch) for _ in range(PER_KEY)]
    assert [(a.status, "Retry-After" in a.headers) for a in decided] == [(403, False)] * PER_KEY
    assert retry_after(await ask(stranger, epoch)) == PER_KEY_EVERY  # its bucket is empty: a token an hour

    clock.advance(1000.25)
    assert retry_after(await ask(stranger, epoch)) == PER_KEY_EVERY - 1000  # 2599.75 s, rounded up
    clock.advance(PER_KEY_EVERY - 1000.25 - 0.5)
    assert retry_after(await ask(stranger, epoch)) == 1  # half a second: never 0
    clock.advance(0.5)
    assert (await ask(stranger, epoch)).error() == "not_host"  # exactly when it was told: decided again


async def test_when_all_strangers_are_limited_the_shared_bucket_sets_the_wait(
    parties: tuple[Callable[[], Party], Epoch], clock: FakeClock
) -> None:
    make, epoch = parties
    answers = [await ask(make(), epoch) for _ in range(ALL)]  # fresh keys, each inside its own burst
    assert [a.status for a in answers] == [403] * ALL
    late = make()
    assert retry_after(await ask(late, epoch)) == ALL_EVERY  # its own bucket has tokens; the shared one has none
    clock.advance(ALL_EVERY)
    assert (await ask(late, epoch)).error() == "not_host"


def test_seconds_until_a_token_changes_nothing() -> None:
    clock = FakeClock(0.0)
    buckets = TokenBuckets(Rate(per_second=0.5, burst=2), clock)
    assert buckets.seconds_until(b"k") == 0.0 and len(buckets) == 0  # an unknown key has a full bucket
    assert buckets.take(b"k") and buckets.take(b"k") and not buckets.take(b"k")
    assert buckets.seconds_until(b"k") == 2.0
    clock.advance(0.5)
    assert buckets.seconds_until(b"k") == buckets.seconds_until(b"k") == 1.5
    clock.advance(1.5)
    assert buckets.seconds_until(b"k") == 0.0 and buckets.take(b"k")
