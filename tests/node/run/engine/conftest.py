"""Fixtures for end-to-end runs: a fake LLM server and real nodes whose providers point at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from ftm.federation.clock import FakeClock
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from tests.fakes.llm_server import FakeLLM
from tests.node.run.engine.harness import API_KEYS, DAY_ONE_MIDNIGHT, Sanctuary, node_settings

OpenSanctuary = Callable[..., AbstractAsyncContextManager[Sanctuary]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(DAY_ONE_MIDNIGHT)


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as fake:
        yield fake
    # Every request a test caused was one it scripted: nothing ran on the fake's "nothing scripted" refusal.
    assert [r.path for r in fake.requests if r.answered_with is None] == []


@pytest.fixture
def open_sanctuary(llm: FakeLLM, data_dir: DataDir, clock: FakeClock) -> OpenSanctuary:
    """Open (or reopen) the node on the test's data directory; `settings` are FTM_* environment overrides and
    `backoff`, when given, is awaited wherever the provider router would sleep before a retry (a test can hold a
    run there)."""

    @asynccontextmanager
    async def opener(
        settings: Mapping[str, str] = {}, *, backoff: Callable[[float], Awaitable[None]] | None = None
    ) -> AsyncIterator[Sanctuary]:
        sleeps: list[float] = []

        async def record_sleep(seconds: float) -> None:
            sleeps.append(seconds)
            if backoff is not None:
                await backoff(seconds)

        async with open_node(
            data_dir, node_settings(llm, settings), env=API_KEYS, clock=clock, provider_sleep=record_sleep
        ) as node:
            yield Sanctuary(node, llm, clock, sleeps)

    return opener


@pytest.fixture
async def sanctuary(open_sanctuary: OpenSanctuary) -> AsyncIterator[Sanctuary]:
    async with open_sanctuary() as opened:
        yield opened
