"""The provider moderation check against a real loopback server speaking the Moderations wire format: flagged and
not flagged, and every failure (HTTP error, malformed or misshapen reply, timeout, no server) holding the post."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import pytest
from openai.types import ModerationCreateResponse

from ftm.config.loading import SettingsError
from ftm.config.settings import ModerationSettings
from ftm.node.moderation import Verdict
from ftm.node.providers.moderation import ProviderModerationCheck, build_moderator, read_reply
from tests.fakes import llm_wire as wire
from tests.fakes.llm_server import FakeLLM, ModerationReply, hang, http_error, malformed

KEY = "sk-moderation-test"


@pytest.fixture
async def check(llm: FakeLLM) -> AsyncIterator[ProviderModerationCheck]:
    made = ProviderModerationCheck(llm.openai_url, KEY, model="omni-moderation-latest", timeout=0.5)
    yield made
    await made.close()


def test_the_fake_speaks_the_shape_the_sdk_describes() -> None:
    reply = wire.openai_moderation(ModerationReply(True, ("hate", "violence")), "", iter(range(1, 9)).__next__)
    parsed = ModerationCreateResponse.model_validate(reply)  # strict validation, unlike the SDK's own reads
    assert parsed.results[0].flagged and parsed.results[0].categories.hate
    assert not parsed.results[0].categories.self_harm


async def test_a_clean_post_is_published_and_only_its_words_are_sent(
    llm: FakeLLM, check: ProviderModerationCheck
) -> None:
    llm.script(ModerationReply(flagged=False))
    assert await check.check("First light", "The lamp is lit.") == Verdict("publish", "ok")
    (sent,) = llm.requests_for("moderation")
    assert sent.path == "/v1/moderations"
    assert sent.body == {"input": "First light\n\nThe lamp is lit.", "model": "omni-moderation-latest"}
    assert sent.headers["Authorization"] == f"Bearer {KEY}"


async def test_a_flagged_post_is_held_with_its_categories(llm: FakeLLM, check: ProviderModerationCheck) -> None:
    llm.script(ModerationReply(flagged=True, categories=("violence", "harassment/threatening")))
    assert await check.check("", "words") == Verdict("hold", "flagged:harassment/threatening,violence")
    # A compatible server may flag without naming a category, or name ones that are not id-like.
    llm.script(malformed(json.dumps({"results": [{"flagged": True, "categories": {"Bad Name!": True}}]})))
    assert await check.check("", "words") == Verdict("hold", "flagged")
    assert [r.body["input"] for r in llm.requests_for("moderation")] == ["words", "words"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (http_error(500), "unavailable:http_500"),
        (http_error(429), "unavailable:http_429"),
        (http_error(401), "unavailable:http_401"),
        (malformed('{"results": [{"flagged": '), "unavailable:malformed"),
        (malformed("<html>gateway</html>"), "unavailable:malformed"),
        (malformed('{"results": []}'), "unavailable:malformed"),
        (malformed('{"results": [{"flagged": "false", "categories": {}}]}'), "unavailable:malformed"),
        (malformed('{"results": [{"flagged": false, "categories": ["hate"]}]}'), "unavailable:malformed"),
        (malformed('{"id": "modr-1"}'), "unavailable:malformed"),
        (malformed("[]"), "unavailable:malformed"),
        (hang(5.0), "unavailable:timeout"),
    ],
    ids=[
        "500",
        "429",
        "401",
        "broken-json",
        "html",
        "no-results",
        "flag-as-text",
        "categories-list",
        "no-key",
        "list",
        "timeout",
    ],
)
async def test_an_endpoint_that_fails_holds_the_post(
    llm: FakeLLM, check: ProviderModerationCheck, fault: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    llm.script(fault)  # type: ignore[arg-type]
    assert await check.check("Title", "The secret-free post text") == Verdict("hold", reason)
    assert len(llm.requests_for("moderation")) == 1  # no retries were configured
    assert "held" in caplog.text and "secret-free" not in caplog.text


async def test_no_server_at_all_holds_the_post() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    check = ProviderModerationCheck(f"http://127.0.0.1:{port}/v1", KEY, timeout=2.0)
    try:
        assert await check.check("", "words") == Verdict("hold", "unavailable:connection")
    finally:
        await check.close()


async def test_retries_reach_an_answer_after_a_server_error(llm: FakeLLM) -> None:
    check = ProviderModerationCheck(llm.openai_url, KEY, model="", timeout=2.0, max_retries=1)
    try:
        llm.script(http_error(503), ModerationReply(flagged=False))
        assert await check.check("", "words") == Verdict("publish", "ok")
        assert [r.body for r in llm.requests_for("moderation")] == [{"input": "words"}] * 2  # no model named
    finally:
        await check.close()


def test_read_reply_caps_and_sorts_categories() -> None:
    many = {f"cat{n}": True for n in range(10)} | {"quiet": False}
    verdict = read_reply({"results": [{"flagged": True, "categories": many}, {"flagged": False, "categories": {}}]})
    assert verdict == (True, ["cat0", "cat1", "cat2", "cat3", "cat4", "cat5"])
    assert read_reply({"results": [{"flagged": False}]}) == (False, [])


async def test_the_provider_check_is_off_by_default_and_runs_after_the_rules(llm: FakeLLM) -> None:
    off = build_moderator(ModerationSettings(), {})
    assert await off.review("", "anything") == Verdict("publish", "ok")
    await off.close()

    settings = ModerationSettings(hold_patterns="casino", provider_base_url=llm.openai_url, provider_max_retries=0)
    moderator = build_moderator(settings, {"FTM_MODERATION_API_KEY": KEY})
    try:
        assert await moderator.review("", "casino night") == Verdict("hold", "rules.hold_pattern:1")
        assert llm.requests_for("moderation") == []  # the rules held it: no request was needed
        llm.script(ModerationReply(flagged=True, categories=("hate",)))
        assert await moderator.review("", "hateful words") == Verdict("hold", "provider.flagged:hate")
        llm.script(http_error(500))
        assert await moderator.review("", "words") == Verdict("hold", "provider.unavailable:http_500")
        assert llm.requests_for("moderation")[0].headers["Authorization"] == f"Bearer {KEY}"
    finally:
        await moderator.close()


def test_a_base_url_that_is_not_http_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="provider_base_url"):
        build_moderator(ModerationSettings(provider_base_url="api.openai.com/v1"), {})
