"""Fixtures for federation tests: `grid(n)` starts n in-process nodes on 127.0.0.1 (see grid.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.network import NetworkSettings
from tests.federation.grid import GRID_SETTINGS, Grid

MakeGrid = Callable[..., Awaitable[Grid]]


@pytest.fixture
async def grid(tmp_path: Path, clock: FakeClock) -> AsyncIterator[MakeGrid]:
    """`await grid(n)`: n nodes, each bootstrapped to every node started before it, so all know each other."""
    grids: list[Grid] = []

    async def make(n: int, settings: NetworkSettings = GRID_SETTINGS) -> Grid:
        made = Grid(tmp_path / f"grid{len(grids)}", clock, settings)
        grids.append(made)
        for _ in range(n):
            await made.add()
        return made

    yield make
    for made in grids:
        await made.close()
