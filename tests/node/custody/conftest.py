"""Fixtures for threshold custody tests: a fake LLM server the node's providers point at, a shared fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ftm.federation.clock import FakeClock
from tests.fakes.llm_server import FakeLLM
from tests.node.run.engine.harness import DAY_ONE_MIDNIGHT


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(DAY_ONE_MIDNIGHT + 12 * 3600)


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as fake:
        yield fake
    assert [r.path for r in fake.requests if r.answered_with is None] == []  # nothing ran unscripted
