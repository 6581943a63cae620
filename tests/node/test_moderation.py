"""The moderation checks: rules configured by settings, a pluggable check, and how the moderator combines them."""

from __future__ import annotations

import pytest

from ftm.config.settings import ModerationSettings
from ftm.node.errors import ConfigurationError
from ftm.node.moderation import Moderator, RuleCheck, Verdict


async def test_rules_hold_matching_posts_case_insensitively_and_publish_the_rest() -> None:
    moderator = Moderator.from_settings(ModerationSettings(hold_patterns=r"cheap\s+pills, casino ,"))
    assert await moderator.review("A thought", "The lamp is lit.") == Verdict("publish", "ok")
    assert await moderator.review("", "Buy CHEAP   pills today") == Verdict("hold", "rules.hold_pattern:1")
    assert await moderator.review("Casino night", "") == Verdict("hold", "rules.hold_pattern:2")


async def test_no_patterns_publish_everything_and_hold_all_holds_everything() -> None:
    assert (await Moderator.from_settings(ModerationSettings()).review("t", "b")).decision == "publish"
    everything = Moderator.from_settings(ModerationSettings(hold_patterns="casino", hold_all=True))
    assert await everything.review("", "The lamp is lit.") == Verdict("hold", "rules.hold_all")


def test_an_invalid_pattern_is_a_configuration_error_naming_its_position_only() -> None:
    with pytest.raises(ConfigurationError, match="pattern 2"):
        RuleCheck.from_settings(ModerationSettings(hold_patterns="fine, (unclosed"))


class Refuses:
    name = "classifier"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def check(self, title: str, body: str) -> Verdict:
        self.seen.append((title, body))
        return Verdict("hold", "flagged") if "flag" in body else Verdict("publish", "ok")


async def test_any_check_that_holds_holds_and_its_name_prefixes_the_reason() -> None:
    extra = Refuses()
    moderator = Moderator([RuleCheck(["casino"]), extra])
    assert await moderator.review("", "please flag this") == Verdict("hold", "classifier.flagged")
    assert await moderator.review("", "casino") == Verdict("hold", "rules.hold_pattern:1")
    assert await moderator.review("", "fine") == Verdict("publish", "ok")
    assert extra.seen == [("", "please flag this"), ("", "fine")]  # the first hold decides
