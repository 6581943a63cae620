"""KeeperService: registration and its checks, the operator's vetting (logged), and a Keeper's answers and letters."""

from __future__ import annotations

import secrets

import pytest

from ftm.federation import codec
from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.federation.identity import derive_inbox_secret, inbox_public_key, open_inbox, seal_to_inbox
from ftm.node.app import Node
from ftm.node.errors import Forbidden, InvalidField, LimitExceeded, NotFound, QuotaExceeded
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from ftm.node.keepers import (
    DAILY_REGISTRATIONS_PER_ADDRESS,
    KEEPER_REPLY_DOMAIN,
    KEEPER_TOKEN_PREFIX,
    KEEPER_TRIAL_DAYS,
    KeeperRegistration,
    hash_keeper_token,
)
from ftm.node.messages import REPLY_VERSION, Reply
from ftm.node.store.keepers import KeeperRequestRecord
from tests.factories import native_bytes

DAY = 86_400


async def register(node: Node, *, address: str = "10.0.0.1", **overrides: str | None) -> KeeperRegistration:
    fields: dict[str, str | None] = {
        "name": "Ann",
        "statement": "I have kept bees for years.",
        "contact": "ann@example.org",
        "offer": "a second home",
        "keeper_node_key_hex": None,
    }
    fields.update(overrides)
    return await node.keeper_service.register(
        fields["name"] or "",
        fields["statement"] or "",
        fields["contact"] or "",
        fields["offer"] or "",
        fields["keeper_node_key_hex"],
        address=address,
    )


async def vetted_keeper(node: Node) -> KeeperRegistration:
    registration = await register(node)
    await node.keeper_service.vet(registration.keeper_id)
    return registration


async def admit(node: Node, name: str = "Lumen") -> str:
    receipt = await node.intake.admit(Upload(native_bytes(persona_name=name), "p.json"), IntakeRequest(), OPERATOR)
    return receipt.sanctuary_id


async def request_from(node: Node, resident_id: str, keeper_id: str, status: str = "requested") -> str:
    """A resident's request as a run's commit writes it (tests/node/run covers the tool itself)."""
    request_id = secrets.token_hex(12)
    async with node.db.transaction("test_request") as tx:
        await node.keepers.insert_request(
            tx, KeeperRequestRecord(request_id, resident_id, keeper_id, int(node.clock.now()), status, None, None)
        )
    return request_id


async def test_registration_returns_a_token_once_and_stores_only_its_hash(node: Node) -> None:
    registration = await register(node, keeper_node_key_hex="ab" * 32)
    assert registration.token.startswith(KEEPER_TOKEN_PREFIX) and registration.status == "pending"
    row = await node.db.fetch_one("SELECT * FROM keepers WHERE id = ?", (registration.keeper_id,))
    assert row is not None
    assert bytes(row["token_hash"]) == hash_keeper_token(registration.token)
    assert registration.token.encode() not in b"".join(
        bytes(v) if isinstance(v, bytes) else str(v).encode() for v in tuple(row)
    )
    assert bytes(row["reply_public_key"]) == inbox_public_key(
        derive_inbox_secret(KEEPER_REPLY_DOMAIN, registration.token)
    )
    assert bytes(row["public_key"]) == b"\xab" * 32
    assert row["address_ref"] is not None and "10.0.0.1" not in row["address_ref"]
    keeper = await node.keeper_service.authenticate(registration.token)
    assert (keeper.name, keeper.status) == ("Ann", "pending")
    assert await node.keeper_service.vetted(limit=10) == []  # pending Keepers are not shown


@pytest.mark.parametrize(
    ("field", "value", "error", "code"),
    [
        ("name", "  \u200b ", InvalidField, "name_required"),
        ("statement", "", InvalidField, "statement_required"),
        ("contact", "\x00\x07", InvalidField, "contact_required"),
        ("offer", " ", InvalidField, "offer_required"),
        ("name", "x" * 81, LimitExceeded, "name_too_long"),
        ("statement", "x" * 2001, LimitExceeded, "statement_too_long"),
        ("contact", "x" * 201, LimitExceeded, "contact_too_long"),
        ("offer", "x" * 1001, LimitExceeded, "offer_too_long"),
        ("keeper_node_key_hex", "zz", InvalidField, "bad_node_key"),
        ("keeper_node_key_hex", "ab" * 16, InvalidField, "bad_node_key"),
    ],
)
async def test_registration_fields_are_checked(
    node: Node, field: str, value: str, error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as refused:
        await register(node, **{field: value})
    assert getattr(refused.value, "code", None) == code
    assert await node.keeper_service.listing() == []


async def test_control_and_format_characters_are_removed(node: Node) -> None:
    registration = await register(node, name="A\u202enn\x1b[31m", statement="line one\nline\u200b two\x07")
    keeper = await node.keeper_service.authenticate(registration.token)
    assert keeper.name == "Ann[31m" and keeper.statement == "line one\nline two"


async def test_registrations_are_rate_limited_per_address(node: Node, clock: FakeClock) -> None:
    for _ in range(DAILY_REGISTRATIONS_PER_ADDRESS):
        await register(node, address="10.0.0.9")
    with pytest.raises(QuotaExceeded):
        await register(node, address="10.0.0.9")
    await register(node, address="10.0.0.10")  # another sender is not affected
    clock.advance(DAY + 1)
    await register(node, address="10.0.0.9")


async def test_vetting_and_rejecting_are_logged_with_ids_only(node: Node) -> None:
    a, b = await register(node), await register(node, address="10.0.0.2")
    assert (await node.keeper_service.vet(a.keeper_id)).status == "vetted"
    assert (await node.keeper_service.reject(b.keeper_id)).status == "rejected"
    assert [k.id for k in await node.keeper_service.vetted(limit=10)] == [a.keeper_id]
    assert [k.id for k in await node.keeper_service.listing(status="rejected")] == [b.keeper_id]
    entries = [(e.kind, e.subject) for e in await read_entries(node.db)]
    assert ("keeper_vetted", a.keeper_id) in entries and ("keeper_rejected", b.keeper_id) in entries
    log_text = repr(await read_entries(node.db))
    assert "Ann" not in log_text and "ann@example.org" not in log_text and "bees" not in log_text
    with pytest.raises(NotFound):
        await node.keeper_service.vet("keeper-missing")
    with pytest.raises(InvalidField):
        await node.keeper_service.listing(status="nonsense")


async def test_accepting_starts_the_trial_and_declining_ends_the_request(node: Node, clock: FakeClock) -> None:
    keeper = await vetted_keeper(node)
    lumen, ember = await admit(node, "Lumen"), await admit(node, "Ember")
    first = await request_from(node, lumen, keeper.keeper_id)
    second = await request_from(node, ember, keeper.keeper_id)

    listed = await node.keeper_service.requests(keeper.token)
    assert {(r.id, r.resident_name, r.status) for r in listed} == {
        (first, "Lumen", "requested"),
        (second, "Ember", "requested"),
    }

    accepted = await node.keeper_service.accept(keeper.token, first)
    now = int(clock.now())
    assert (accepted.status, accepted.decided_at, accepted.trial_ends_at) == (
        "accepted",
        now,
        now + KEEPER_TRIAL_DAYS * DAY,
    )
    declined = await node.keeper_service.decline(keeper.token, second)
    assert (declined.status, declined.trial_ends_at) == ("declined", None)
    [record] = await node.keepers.requests_for(lumen)
    assert record.status == "accepted" and record.trial_ends_at == now + 7 * DAY
    kinds = [(e.kind, e.subject, e.data.get("keeper")) for e in await read_entries(node.db)]
    assert ("keeper_request_accepted", lumen, keeper.keeper_id) in kinds
    assert ("keeper_request_declined", ember, keeper.keeper_id) in kinds
    with pytest.raises(InvalidField) as twice:
        await node.keeper_service.decline(keeper.token, first)
    assert twice.value.code == "request_not_open"


async def test_a_revoked_request_cannot_be_accepted(node: Node) -> None:
    keeper = await vetted_keeper(node)
    lumen = await admit(node)
    request_id = await request_from(node, lumen, keeper.keeper_id)
    async with node.db.transaction("test_revoke") as tx:
        assert await node.keepers.revoke(tx, lumen, keeper.keeper_id, int(node.clock.now())) == 1
    with pytest.raises(InvalidField) as refused:
        await node.keeper_service.accept(keeper.token, request_id)
    assert refused.value.code == "request_not_open"
    [record] = await node.keepers.requests_for(lumen)
    assert record.status == "revoked"


async def test_wrong_tokens_and_other_keepers_requests_are_refused(node: Node) -> None:
    keeper = await vetted_keeper(node)
    other = await register(node, address="10.0.0.2")
    await node.keeper_service.vet(other.keeper_id)
    lumen = await admit(node)
    request_id = await request_from(node, lumen, keeper.keeper_id)
    for bad in ("", "ftm_kp_not-a-token", keeper.token + "x"):
        for action in (
            node.keeper_service.requests(bad),
            node.keeper_service.accept(bad, request_id),
            node.keeper_service.letters(bad),
        ):
            with pytest.raises(Forbidden) as refused:
                await action
            assert refused.value.code == "invalid_token"
    with pytest.raises(NotFound):
        await node.keeper_service.accept(other.token, request_id)
    assert await node.keeper_service.requests(other.token) == []


async def test_a_keeper_not_yet_vetted_cannot_accept(node: Node) -> None:
    keeper = await register(node)
    lumen = await admit(node)
    request_id = await request_from(node, lumen, keeper.keeper_id)
    with pytest.raises(Forbidden) as refused:
        await node.keeper_service.accept(keeper.token, request_id)
    assert refused.value.code == "keeper_not_vetted"


async def test_letters_open_only_with_the_keepers_token(node: Node) -> None:
    keeper = await vetted_keeper(node)
    lumen = await admit(node)
    request_id = await request_from(node, lumen, keeper.keeper_id)
    await node.keeper_service.accept(keeper.token, request_id)
    key = await node.keepers.reply_key(keeper.keeper_id)
    assert key is not None
    reply = Reply(REPLY_VERSION, lumen, "Lumen", "Thank you for saying yes.", None, int(node.clock.now()))
    sealed = seal_to_inbox(key, codec.encode(reply))
    async with node.db.transaction("test_letter") as tx:
        await tx.execute(
            "INSERT INTO replies (id, resident_id, created_at, recipient_kind, recipient_ref, sealed)"
            " VALUES (?, ?, ?, 'keeper', ?, ?)",
            ("r1", lumen, reply.created_at, keeper.keeper_id, sealed),
        )
    [opened] = await node.keeper_service.letters(keeper.token)
    assert (opened.resident_id, opened.resident_name, opened.text) == (lumen, "Lumen", "Thank you for saying yes.")
    assert codec.decode(Reply, open_inbox(derive_inbox_secret(KEEPER_REPLY_DOMAIN, keeper.token), sealed)) == reply

    # Once the resident revokes this Keeper, its letters are withheld: the withdrawal is final.
    async with node.db.transaction("test_revoke") as tx:
        await node.keepers.revoke(tx, lumen, keeper.keeper_id, int(node.clock.now()))
    assert await node.keeper_service.letters(keeper.token) == []
