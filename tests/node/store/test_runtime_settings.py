"""Runtime settings: defaults, validated changes, and a signed log entry for every change."""

from __future__ import annotations

import pytest

from ftm.config.loading import SettingsError
from ftm.federation.eventlog import read_entries, verify_chain
from ftm.node.app import Node


async def test_defaults_then_change_is_stored_and_logged(node: Node) -> None:
    store = node.runtime_settings
    assert (await store.current()).daily_tokens == 10_000
    change = await store.set("daily_tokens", "20000")
    assert (change.old, change.new) == (10_000, 20_000)
    assert await store.get("daily_tokens") == 20_000
    await store.set("run_window_start", "05:30")
    assert (await store.current()).run_window_start == "05:30"
    entries = await read_entries(node.db, kind="setting_changed")
    assert [(e.subject, e.data["old"], e.data["new"]) for e in entries] == [
        ("daily_tokens", 10_000, 20_000),
        ("run_window_start", "06:00", "05:30"),
    ]
    assert (await verify_chain(node.db, node.identity.public_key)).valid


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("daily_token", "5", "did you mean 'daily_tokens'"),
        ("daily_tokens", "lots", "whole number"),
        ("daily_tokens", "-1", "at least 0"),
        ("run_window_start", "6am", "HH:MM"),
        ("run_concurrency", "0", "at least 1"),
    ],
)
async def test_bad_changes_are_refused_and_not_logged(node: Node, name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        await node.runtime_settings.set(name, value)
    assert await read_entries(node.db, kind="setting_changed") == []
    assert (await node.runtime_settings.current()).daily_tokens == 10_000
