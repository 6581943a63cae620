"""Building the node's providers from settings and the environment, and the default model choices.

A provider exists only when it can work: Anthropic and OpenAI when their API key is in the environment, the local
OpenAI-compatible server when `providers.local_base_url` is set (its key, FTM_LOCAL_API_KEY, is optional). The
offline demo provider exists only when the operator names it in `default_provider` or `fallback`, so no resident
is ever answered by it without the operator having asked.
"""

from __future__ import annotations

from collections.abc import Mapping

from ftm.config.loading import SettingsError
from ftm.config.settings import ProvidersSettings
from ftm.node.persona import ModelChoice
from ftm.node.providers.anthropic import AnthropicProvider
from ftm.node.providers.base import Provider
from ftm.node.providers.demo import DemoProvider
from ftm.node.providers.openai_chat import OpenAIChatProvider

ANTHROPIC_KEY_ENV = "ANTHROPIC_API_KEY"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
LOCAL_KEY_ENV = "FTM_LOCAL_API_KEY"
_BUILT_IN = ("anthropic", "openai", "demo")


def build_providers(settings: ProvidersSettings, env: Mapping[str, str]) -> dict[str, Provider]:
    """The providers this node can use, by name. Keys are read from `env` and handed to the SDK clients only."""
    if settings.local_base_url and settings.local_name in _BUILT_IN:
        raise SettingsError(
            f"setting providers.local_name must not be one of {', '.join(_BUILT_IN)}, got {settings.local_name!r}"
        )
    timeout = float(settings.request_timeout_seconds)
    providers: dict[str, Provider] = {}
    if key := env.get(ANTHROPIC_KEY_ENV, "").strip():
        providers["anthropic"] = AnthropicProvider(key, settings.anthropic_base_url, timeout, settings.stream)
    if key := env.get(OPENAI_KEY_ENV, "").strip():
        providers["openai"] = OpenAIChatProvider("openai", key, settings.openai_base_url, timeout, settings.stream)
    if settings.local_base_url:
        providers[settings.local_name] = OpenAIChatProvider(
            settings.local_name,
            # Local servers mostly ignore the key, but the SDK insists on one.
            env.get(LOCAL_KEY_ENV, "").strip() or "none",
            settings.local_base_url,
            timeout,
            settings.stream,
            legacy_max_tokens=True,
            models_without_tools=frozenset(
                name.strip() for name in settings.local_models_without_tools.split(",") if name.strip()
            ),
        )
    if "demo" in {choice.provider for choice in default_choices(settings)}:
        providers["demo"] = DemoProvider()
    return providers


def default_choices(settings: ProvidersSettings) -> tuple[ModelChoice, ...]:
    """The node's default model followed by its fallbacks, for residents that chose nothing, and after a
    resident's own choices."""
    if not settings.default_provider.strip() or not settings.default_model.strip():
        raise SettingsError("settings providers.default_provider and providers.default_model must not be empty")
    return (ModelChoice(settings.default_provider.strip(), settings.default_model.strip()), *parse_fallback(settings))


def parse_fallback(settings: ProvidersSettings) -> tuple[ModelChoice, ...]:
    """`providers.fallback` as choices: comma-separated `provider:model` pairs (a model may itself contain `:`,
    as Ollama tags do, so only the first `:` separates)."""
    choices = []
    for position, item in enumerate(settings.fallback.split(","), start=1):
        item = item.strip()
        if not item:
            if settings.fallback.strip():
                raise SettingsError(f"setting providers.fallback has an empty entry at position {position}")
            continue
        provider, _, model = item.partition(":")
        if not provider.strip() or not model.strip():
            raise SettingsError(
                f"setting providers.fallback must be comma-separated provider:model pairs; entry {position} "
                f"({item!r}) is not"
            )
        choices.append(ModelChoice(provider.strip(), model.strip()))
    return tuple(choices)
