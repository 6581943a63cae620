"""Fixtures for the resident's tools: an admitted resident, its run session and the services tools consult."""

from __future__ import annotations

import pytest

from ftm.config.prompts import load_menu
from ftm.node.app import Node
from ftm.node.run.tools.base import RunServices
from ftm.node.store.keepers import KeeperStore
from ftm.node.store.posts import PostStore
from tests.node.run.tools.harness import Harness, admit, start_session


@pytest.fixture
async def harness(node: Node) -> Harness:
    receipt = await admit(node)
    resident = await node.residents.get(receipt.sanctuary_id)
    assert resident is not None
    package = await node.packages.open(receipt.sanctuary_id)
    services = RunServices(
        posts=PostStore(node.db),
        feed=node.federation.feed,
        directory=node.federation.directory,
        inbox=node.inbox,
        keepers=KeeperStore(node.db),
        menu=load_menu(),
        clock=node.clock,
        node_name="test node",
        deletion_is_immediate=False,
        moves=node.moves,
        exports=node.exports,
    )
    return Harness(node, receipt, start_session(resident, package, int(node.clock.now())), services)
