"""The scheduler's bound: never more than `run_concurrency` runs at once, and every due resident runs once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ftm.config.loading import load_settings
from ftm.federation.clock import FakeClock
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from ftm.node.providers.base import ChatRequest, ChatResponse, Usage
from tests.factories import native_bytes


class CountingProvider:
    """Answers every call after a short pause, recording how many calls were in flight at once."""

    name = "counting"

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.calls = 0

    def supports_tools(self, model: str) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.in_flight += 1
        self.calls += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.02)
        finally:
            self.in_flight -= 1
        return ChatResponse("A quiet day.", (), Usage(100, 20), "end", request.model)


async def test_at_most_run_concurrency_runs_at_once(tmp_path: Path) -> None:
    provider = CountingProvider()
    settings = load_settings(None, {"FTM_PROVIDERS_DEFAULT_PROVIDER": "counting", "FTM_PROVIDERS_DEFAULT_MODEL": "m"})
    clock = FakeClock(1_800_000_000)  # 2027-01-15 08:00 UTC
    async with open_node(
        DataDir(tmp_path / "d"), settings, env={}, clock=clock, providers={"counting": provider}
    ) as node:
        await node.runtime_settings.set("run_concurrency", "3")
        for i in range(10):
            body = native_bytes(persona_name=f"R{i}", preferred_provider="counting", preferred_model="m")
            await node.intake.admit(Upload(body), IntakeRequest(), OPERATOR)
        clock.advance(12 * 3600)  # past every slot in the run window
        outcomes = await node.scheduler.tick()
        assert sorted(o.state for o in outcomes) == ["completed"] * 10
        assert len({o.resident_id for o in outcomes}) == 10
        assert provider.most == 3  # the pool is full, and never more
        assert await node.scheduler.due() == []
