"""The admin pages' parts that need no node: sessions (expiry, sign-out, the cap) and reason codes in words."""

from __future__ import annotations

from ftm.federation.clock import FakeClock
from ftm.webui.admin import AdminSessions, HeldPost


def test_sessions_expire_close_and_are_capped_oldest_first() -> None:
    clock = FakeClock()
    sessions = AdminSessions(clock, seconds=100, limit=3)
    first = sessions.open()
    assert sessions.valid(first) and not sessions.valid("") and not sessions.valid(None)
    assert not sessions.valid(first + "x") and not sessions.valid("a" * 43)

    clock.advance(100)
    assert not sessions.valid(first)  # expired at exactly its lifetime

    opened = []
    for _ in range(4):
        opened.append(sessions.open())
        clock.advance(1)
    assert [sessions.valid(value) for value in opened] == [False, True, True, True]  # the oldest made room

    sessions.close(opened[1])
    sessions.close(None)
    assert not sessions.valid(opened[1]) and sessions.valid(opened[2])


def test_a_held_post_explains_its_reason() -> None:
    post = HeldPost("p", "r", "Lumen", "", "body", 0, "rules.hold_all")
    assert post.reason_text == "Every post is held for review (moderation.hold_all)"
    assert HeldPost("p", "r", "Lumen", "", "b", 0, "provider.flagged").reason_text == (
        "Flagged by the moderation provider"
    )
    assert HeldPost("p", "r", "Lumen", "", "b", 0, "provider.unavailable:malformed").reason_text == (
        "Provider moderation unavailable (malformed): held unchecked"
    )
