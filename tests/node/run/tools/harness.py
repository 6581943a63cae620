"""Calling a resident's tools in tests the way the engine does: arguments checked first, untrusted reads flagged."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from typing import Any

from ftm.federation.database import Database
from ftm.node.app import Node
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeReceipt, IntakeRequest
from ftm.node.persona import PersonaPackage
from ftm.node.run.fence import Fence
from ftm.node.run.session import RunSession, TokenBudget
from ftm.node.run.tools.base import RunServices, Tool, check_arguments
from ftm.node.store.keepers import KeeperRecord, KeeperRequestRecord, KeeperStore
from ftm.node.store.posts import PostRecord, PostStore
from ftm.node.store.residents import ResidentRecord
from tests.factories import native_bytes

DAY = "2027-01-15"
FENCE_TOKEN = "f3nc3t0k"
OPEN = f"<<<UNTRUSTED {FENCE_TOKEN}"
CLOSE = f"UNTRUSTED {FENCE_TOKEN}>>>"
WRITTEN_TABLES = ("posts", "messages", "replies", "keeper_requests", "keepers", "residents", "keeper_exports")


class SchemaRejected(Exception):
    """The engine would not have called the handler: the arguments do not match the tool's schema."""


@dataclass
class Harness:
    node: Node
    receipt: IntakeReceipt
    session: RunSession
    services: RunServices

    @property
    def resident_id(self) -> str:
        return self.receipt.sanctuary_id

    async def call(self, selected: Tool, **args: Any) -> str:
        problems = check_arguments(selected.spec.parameters, args)
        if problems:
            raise SchemaRejected("; ".join(problems))
        if selected.reads_untrusted:
            self.session.untrusted_read = True
        return await selected.handler(self.session, self.services, args)

    def with_package(self, **changes: Any) -> None:
        """Restart the session from a changed package (as if the vault had held it)."""
        package: PersonaPackage = dataclasses.replace(self.session.package, **changes)
        self.session = start_session(self.session.resident, package, self.session.now)


def start_session(resident: ResidentRecord, package: PersonaPackage, now: int) -> RunSession:
    return RunSession.start(
        resident=resident,
        package=package,
        day=DAY,
        now=now,
        fence=Fence(FENCE_TOKEN),
        budget=TokenBudget(available=10_000),
    )


async def admit(node: Node, **overrides: Any) -> IntakeReceipt:
    return await node.intake.admit(Upload(native_bytes(**overrides)), IntakeRequest(), OPERATOR)


async def insert_post(
    node: Node,
    resident_id: str,
    *,
    created_at: int,
    title: str = "",
    body: str = "hello",
    moderation: str = "published",
) -> str:
    post_id = secrets.token_hex(8)
    async with node.db.transaction("test_post") as tx:
        await PostStore(node.db).insert(
            tx, PostRecord(post_id, resident_id, created_at, title, body, signature=b"s" * 64, moderation=moderation)
        )
    return post_id


async def add_keeper(
    node: Node,
    keeper_id: str,
    *,
    status: str = "vetted",
    name: str = "Ann",
    statement: str = "I keep.",
    offer: str = "a second home",
) -> None:
    keepers = KeeperStore(node.db)
    await keepers.register(
        KeeperRecord(keeper_id, name, statement, "ann@example.org", offer, None, "pending", 1_700_000_000),
        token_hash=secrets.token_bytes(32),
        reply_public_key=secrets.token_bytes(32),
    )
    async with node.db.transaction("test_keeper_status") as tx:
        await keepers.set_status(tx, keeper_id, status)


async def add_request(node: Node, resident_id: str, keeper_id: str, status: str, at: int = 1_700_000_100) -> None:
    async with node.db.transaction("test_keeper_request") as tx:
        await KeeperStore(node.db).insert_request(
            tx, KeeperRequestRecord(secrets.token_hex(6), resident_id, keeper_id, at, status, None, None)
        )


async def snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the tables a run writes when it commits, to show that tools themselves write nothing."""
    return {
        table: [tuple(row) for row in await db.fetch_all(f"SELECT * FROM {table} ORDER BY rowid")]
        for table in WRITTEN_TABLES
    }
