"""Building providers from settings and environment keys; default choices and the fallback setting."""

from __future__ import annotations

import dataclasses

import pytest

from ftm.config.loading import SettingsError, load_settings
from ftm.config.settings import ProvidersSettings
from ftm.node.persona import ModelChoice
from ftm.node.providers.anthropic import AnthropicProvider
from ftm.node.providers.demo import DemoProvider
from ftm.node.providers.openai_chat import OpenAIChatProvider
from ftm.node.providers.registry import build_providers, default_choices, parse_fallback


async def test_only_providers_with_keys_are_built() -> None:
    assert await _names(ProvidersSettings(), {}) == []
    assert await _names(ProvidersSettings(), {"ANTHROPIC_API_KEY": "a"}) == ["anthropic"]
    assert await _names(ProvidersSettings(), {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"}) == [
        "anthropic",
        "openai",
    ]
    assert await _names(ProvidersSettings(), {"OPENAI_API_KEY": "  "}) == []


async def test_local_server_needs_only_a_base_url() -> None:
    settings = ProvidersSettings(
        local_base_url="http://127.0.0.1:11434/v1", local_name="ollama", local_models_without_tools=" gemma:2b, phi "
    )
    providers = build_providers(settings, {})
    local = providers["ollama"]
    assert isinstance(local, OpenAIChatProvider) and local.name == "ollama"
    assert not local.supports_tools("gemma:2b") and not local.supports_tools("phi")
    assert local.supports_tools("llama3.1")
    await local.close()


async def test_provider_types() -> None:
    providers = build_providers(ProvidersSettings(), {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"})
    assert isinstance(providers["anthropic"], AnthropicProvider)
    assert isinstance(providers["openai"], OpenAIChatProvider)
    for provider in providers.values():
        await provider.close()


async def test_demo_exists_only_when_the_operator_names_it() -> None:
    assert "demo" not in build_providers(ProvidersSettings(), {})
    as_default = build_providers(ProvidersSettings(default_provider="demo", default_model="offline"), {})
    assert isinstance(as_default["demo"], DemoProvider)
    assert "demo" in build_providers(ProvidersSettings(fallback="demo:offline"), {})


def test_local_name_may_not_shadow_a_built_in_provider() -> None:
    settings = ProvidersSettings(local_base_url="http://127.0.0.1:8000/v1", local_name="openai")
    with pytest.raises(SettingsError, match=r"providers\.local_name"):
        build_providers(settings, {})


def test_default_choices_are_the_default_then_the_fallbacks() -> None:
    settings = ProvidersSettings(fallback="openai:gpt-4.1-mini, local:llama3.1:8b")
    assert default_choices(settings) == (
        ModelChoice("anthropic", "claude-sonnet-5-5"),
        ModelChoice("openai", "gpt-4.1-mini"),
        ModelChoice("local", "llama3.1:8b"),
    )
    assert parse_fallback(ProvidersSettings()) == ()


@pytest.mark.parametrize("fallback", ["openai", "openai:", ":gpt", "openai:gpt,,local:x", "openai:gpt,"])
def test_bad_fallback_names_the_setting(fallback: str) -> None:
    with pytest.raises(SettingsError, match=r"providers\.fallback"):
        default_choices(ProvidersSettings(fallback=fallback))


def test_settings_load_from_the_environment() -> None:
    settings = load_settings(
        None,
        {
            "FTM_PROVIDERS_STREAM": "false",
            "FTM_PROVIDERS_MAX_RETRIES": "5",
            "ANTHROPIC_API_KEY": "a",
            "FTM_LOCAL_API_KEY": "l",
        },
    )
    assert settings.providers == dataclasses.replace(ProvidersSettings(), stream=False, max_retries=5)


async def _names(settings: ProvidersSettings, env: dict[str, str]) -> list[str]:
    providers = build_providers(settings, env)
    for provider in providers.values():
        await provider.close()
    return sorted(providers)
