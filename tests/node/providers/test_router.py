"""Routing: retries with growing backoff, fallback to the next choice, refusals skipped at once, verdicts."""

from __future__ import annotations

import email.utils
from collections.abc import Callable

import pytest

from ftm.node.persona import ModelChoice
from ftm.node.providers.base import Provider, ProviderRefused, ProviderUnavailable, retry_after_seconds
from ftm.node.providers.router import (
    AllChoicesRefused,
    AllChoicesUnavailable,
    Attempt,
    ProviderRouter,
)
from tests.fakes.llm_server import FakeLLM, Reply, hang, http_error
from tests.node.providers.factories import (
    ANTHROPIC_MODEL,
    OPENAI_MODEL,
    FakeSleep,
    ScriptedProvider,
    anthropic_provider,
    make_request,
    make_response,
    openai_provider,
)

CHOICES = (ModelChoice("anthropic", ANTHROPIC_MODEL), ModelChoice("openai", OPENAI_MODEL))


def unavailable(status: int | None = 503) -> ProviderUnavailable:
    return ProviderUnavailable("down", status=status)


async def test_rate_limit_then_success_is_retried_with_growing_backoff(llm: FakeLLM) -> None:
    sleep = FakeSleep()
    anthropic = anthropic_provider(llm, stream=True)
    router = ProviderRouter({"anthropic": anthropic}, max_retries=3, sleep=sleep, jitter=lambda: 0.25)
    llm.script(http_error(429), http_error(429), http_error(429), Reply(text="at last"))

    routed = await router.complete(CHOICES[:1], make_request())

    assert routed.response.text == "at last" and (routed.provider, routed.model) == ("anthropic", ANTHROPIC_MODEL)
    assert [a.outcome for a in routed.attempts] == ["unavailable"] * 3 + ["ok"]
    assert [a.status for a in routed.attempts] == [429, 429, 429, None]
    assert sleep.delays == [0.5 * 1.25, 0.5 * 2.25, 0.5 * 4.25]
    assert sleep.delays == sorted(sleep.delays) and len(set(sleep.delays)) == 3
    await router.close()


@pytest.mark.parametrize("make", [anthropic_provider, openai_provider], ids=["anthropic", "openai"])
async def test_retry_after_is_honoured_over_the_backoff(llm: FakeLLM, make: Callable[..., Provider]) -> None:
    sleep = FakeSleep()
    provider = make(llm, stream=False)
    name = provider.name
    router = ProviderRouter({name: provider}, max_retries=2, sleep=sleep, jitter=lambda: 0.0)
    api = "anthropic" if name == "anthropic" else "openai"
    llm.script(
        http_error(429, headers={"retry-after": "7"}),
        http_error(503, headers={"retry-after-ms": "1500"}),
        Reply(text="after waiting"),
        api=api,
    )
    choice = next(c for c in CHOICES if c.provider == name)

    routed = await router.complete((choice,), make_request())

    assert routed.response.text == "after waiting"
    # The first wait is what the provider asked (7 s > 0.5 s backoff); the second is the larger of the two.
    assert sleep.delays == [7.0, 1.5]
    await router.close()


async def test_a_retry_after_beyond_the_limit_moves_to_the_next_choice_at_once(llm: FakeLLM) -> None:
    sleep = FakeSleep()
    anthropic, openai = anthropic_provider(llm, stream=False), openai_provider(llm, stream=False)
    router = ProviderRouter({"anthropic": anthropic, "openai": openai}, max_retries=3, sleep=sleep, max_wait=60)
    llm.script(http_error(429, headers={"retry-after": "3600"}), api="anthropic")
    llm.script(Reply(text="from the fallback"), api="openai")

    routed = await router.complete(CHOICES, make_request())

    assert routed.provider == "openai" and routed.response.text == "from the fallback"
    assert [a.outcome for a in routed.attempts] == ["unavailable", "ok"]
    assert sleep.delays == []
    await router.close()


def test_retry_after_forms_are_read_and_bad_ones_ignored() -> None:
    now = 1_700_000_000.0
    http_date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": "12"}, now) == 12.0
    assert retry_after_seconds({"retry-after": http_date}, now) == 30.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}, now) == 0.25
    assert retry_after_seconds({"retry-after": "-5"}, now) == 0.0
    assert retry_after_seconds({"retry-after": email.utils.formatdate(now - 30, usegmt=True)}, now) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}, now) is None
    assert retry_after_seconds({"retry-after": "nan"}, now) is None
    assert retry_after_seconds({"retry-after-ms": "x", "retry-after": "2"}, now) == 2.0
    assert retry_after_seconds({}, now) is None


async def test_server_errors_exhaust_retries_then_fall_back(llm: FakeLLM) -> None:
    sleep = FakeSleep()
    providers = {"anthropic": anthropic_provider(llm, stream=False), "openai": openai_provider(llm, stream=True)}
    router = ProviderRouter(providers, max_retries=2, sleep=sleep, jitter=lambda: 0.0)
    llm.script(http_error(500), http_error(500), http_error(500), api="anthropic")
    llm.script(Reply(text="from the fallback", input_tokens=30, output_tokens=4), api="openai")

    routed = await router.complete(CHOICES, make_request())

    assert (routed.provider, routed.model, routed.response.text) == ("openai", OPENAI_MODEL, "from the fallback")
    assert routed.response.usage.total == 34
    assert routed.attempts == (
        Attempt("anthropic", ANTHROPIC_MODEL, "unavailable", 500),
        Attempt("anthropic", ANTHROPIC_MODEL, "unavailable", 500),
        Attempt("anthropic", ANTHROPIC_MODEL, "unavailable", 500),
        Attempt("openai", OPENAI_MODEL, "ok"),
    )
    assert sleep.delays == [0.5, 1.0]  # between retries of one choice only, none before the fallback
    assert [r.body["model"] for r in llm.requests] == [ANTHROPIC_MODEL] * 3 + [OPENAI_MODEL]
    await router.close()


async def test_refusal_skips_to_the_fallback_without_retrying(llm: FakeLLM) -> None:
    sleep = FakeSleep()
    providers = {"anthropic": anthropic_provider(llm, stream=True), "openai": openai_provider(llm, stream=False)}
    router = ProviderRouter(providers, max_retries=3, sleep=sleep)
    llm.script(http_error(401), api="anthropic")
    llm.script(Reply(text="fine"), api="openai")

    routed = await router.complete(CHOICES, make_request())

    assert routed.provider == "openai"
    assert routed.attempts[0] == Attempt("anthropic", ANTHROPIC_MODEL, "refused", 401)
    assert sleep.delays == [] and len(llm.requests_for("anthropic")) == 1
    await router.close()


async def test_timeouts_count_as_outages(llm: FakeLLM) -> None:
    router = ProviderRouter(
        {"anthropic": anthropic_provider(llm, stream=True, timeout=0.3)}, max_retries=1, sleep=FakeSleep()
    )
    llm.script(hang(10), hang(10))
    with pytest.raises(AllChoicesUnavailable) as caught:
        await router.complete(CHOICES[:1], make_request())
    assert [a.outcome for a in caught.value.attempts] == ["unavailable", "unavailable"]
    await router.close()


async def test_all_down_is_unavailable_and_names_every_attempt() -> None:
    first = ScriptedProvider("anthropic").script(unavailable(529), unavailable(529))
    second = ScriptedProvider("openai").script(ProviderRefused("no", status=404))
    router = ProviderRouter({"anthropic": first, "openai": second}, max_retries=1, sleep=FakeSleep())
    with pytest.raises(AllChoicesUnavailable) as caught:
        await router.complete(CHOICES, make_request())
    assert isinstance(caught.value, ProviderUnavailable)
    assert [a.outcome for a in caught.value.attempts] == ["unavailable", "unavailable", "refused"]
    assert str(caught.value) == (
        f"every model choice failed: anthropic:{ANTHROPIC_MODEL} unavailable (HTTP 529), "
        f"anthropic:{ANTHROPIC_MODEL} unavailable (HTTP 529), openai:{OPENAI_MODEL} refused (HTTP 404)"
    )


async def test_all_refused_is_refused() -> None:
    only = ScriptedProvider("anthropic").script(ProviderRefused("bad key", status=401))
    router = ProviderRouter({"anthropic": only}, max_retries=3, sleep=FakeSleep())
    with pytest.raises(AllChoicesRefused) as caught:
        await router.complete([*CHOICES, ModelChoice("mystery", "m")], make_request())
    assert isinstance(caught.value, ProviderRefused)
    assert [a.outcome for a in caught.value.attempts] == ["refused", "unknown_provider", "unknown_provider"]


async def test_unknown_provider_is_skipped_with_a_reason() -> None:
    known = ScriptedProvider("openai").script(make_response("hi"))
    router = ProviderRouter({"openai": known}, max_retries=0)
    routed = await router.complete([ModelChoice("gemini", "g-1"), CHOICES[1]], make_request())
    assert routed.attempts == (Attempt("gemini", "g-1", "unknown_provider"), Attempt("openai", OPENAI_MODEL, "ok"))
    assert known.requests[0].model == OPENAI_MODEL


async def test_no_choices_is_refused() -> None:
    router = ProviderRouter({}, max_retries=0)
    with pytest.raises(AllChoicesRefused):
        await router.complete([], make_request())


async def test_close_closes_every_provider() -> None:
    providers = {"a": ScriptedProvider("a"), "b": ScriptedProvider("b")}
    await ProviderRouter(providers, max_retries=0).close()
    assert all(p.closed for p in providers.values())


def test_negative_retries_are_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        ProviderRouter({}, max_retries=-1)
