"""Fixtures shared by every test: a data directory, an open node on a fake clock, an HTTP client over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

from ftm.config.loading import load_settings
from ftm.config.settings import Settings
from ftm.federation.clock import FakeClock
from ftm.node.app import Node, open_node
from ftm.node.datadir import DataDir
from ftm.node.serving import create_web_app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> DataDir:
    return DataDir(tmp_path / "ftm-data")


@pytest.fixture
def settings() -> Settings:
    return load_settings(None, {})


@pytest.fixture
async def node(data_dir: DataDir, settings: Settings, clock: FakeClock) -> AsyncIterator[Node]:
    async with open_node(data_dir, settings, env={}, clock=clock) as opened:
        yield opened


@pytest.fixture
async def client(node: Node, aiohttp_client: AiohttpClient) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(create_web_app(node))
