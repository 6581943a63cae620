"""Routing one request over a resident's model choices: retries with backoff, then fallback, then a verdict.

Each choice (provider, model) is tried in order. An outside failure (`ProviderUnavailable`) is retried on the same
choice with exponential backoff and jitter, up to `max_retries` times, before moving on (waiting longer when
the provider's Retry-After asks for it, up to `MAX_ASKED_WAIT`; a longer ask moves on at once); a refusal moves on at
once, since asking again would get the same answer; a provider this node does not have is skipped. When every
choice has failed the router raises `AllChoicesUnavailable` (a `ProviderUnavailable`) if any failure was an
outside cause (the run can be tried again later at no cost), else `AllChoicesRefused` (a `ProviderRefused`).

Every attempt is recorded as an `Attempt`: provider, model, outcome and HTTP status, never content.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ftm.node.persona import ModelChoice
from ftm.node.providers.base import ChatRequest, ChatResponse, Provider, ProviderRefused, ProviderUnavailable
from ftm.node.providers.textual import TextualToolsProvider

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "unavailable", "refused", "unknown_provider")
MAX_ASKED_WAIT = 60.0  # a provider's Retry-After is honoured up to this many seconds; longer moves on


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one choice. `status` is the HTTP status when the provider answered with one."""

    provider: str
    model: str
    outcome: str  # one of OUTCOMES
    status: int | None = None


@dataclass(frozen=True, slots=True)
class RoutedResponse:
    response: ChatResponse
    provider: str
    model: str
    attempts: tuple[Attempt, ...]


class AllChoicesUnavailable(ProviderUnavailable):
    """Every choice failed, at least one for an outside cause."""

    def __init__(self, message: str, attempts: tuple[Attempt, ...]) -> None:
        super().__init__(message)
        self.attempts = attempts


class AllChoicesRefused(ProviderRefused):
    """Every choice was refused or names a provider this node does not have."""

    def __init__(self, message: str, attempts: tuple[Attempt, ...]) -> None:
        super().__init__(message)
        self.attempts = attempts


class ProviderRouter:
    """Routes requests over the node's providers. Providers without native tool calling for a model are wrapped
    in the plain-text action fallback. `sleep` and `jitter` are injected so tests control the backoff."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        max_retries: int,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        backoff_base: float = 0.5,
        max_wait: float = MAX_ASKED_WAIT,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self._providers = {name: TextualToolsProvider(provider) for name, provider in providers.items()}
        self._max_retries = max_retries
        self._sleep = sleep
        self._backoff_base = backoff_base
        self._max_wait = max_wait
        self._jitter = jitter

    @property
    def provider_names(self) -> frozenset[str]:
        return frozenset(self._providers)

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0-based): doubling, plus up to one base of jitter so many
        residents retrying at once do not return in step."""
        return self._backoff_base * ((1 << retry) + self._jitter())

    async def complete(self, choices: Sequence[ModelChoice], request: ChatRequest) -> RoutedResponse:
        attempts: list[Attempt] = []
        for choice in choices:
            provider = self._providers.get(choice.provider)
            if provider is None:
                attempts.append(Attempt(choice.provider, choice.model, "unknown_provider"))
                log.warning("provider not configured on this node: provider=%s", choice.provider)
                continue
            routed = replace(request, model=choice.model)
            asked_wait: float | None = None
            for retry in range(self._max_retries + 1):
                if retry:
                    await self._sleep(max(self.backoff(retry - 1), asked_wait or 0.0))
                try:
                    response = await provider.complete(routed)
                except ProviderUnavailable as exc:
                    attempts.append(Attempt(choice.provider, choice.model, "unavailable", exc.status))
                    self._log_failure(attempts[-1], retry)
                    asked_wait = exc.retry_after
                    if asked_wait is not None and asked_wait > self._max_wait:
                        # Waiting that long would hold a worker idle; the next choice (or tomorrow's retry of
                        # the run, which costs nothing) serves the resident better.
                        log.warning(
                            "provider asked for a %.0f s wait, more than %.0f s: moving on: provider=%s",
                            asked_wait,
                            self._max_wait,
                            choice.provider,
                        )
                        break
                    continue
                except ProviderRefused as exc:
                    attempts.append(Attempt(choice.provider, choice.model, "refused", exc.status))
                    self._log_failure(attempts[-1], retry)
                    break
                attempts.append(Attempt(choice.provider, choice.model, "ok"))
                return RoutedResponse(response, choice.provider, choice.model, tuple(attempts))
        raise _verdict(tuple(attempts))

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()

    @staticmethod
    def _log_failure(attempt: Attempt, retry: int) -> None:
        log.warning(
            "model attempt failed: provider=%s model=%s outcome=%s status=%s retry=%d",
            attempt.provider,
            attempt.model,
            attempt.outcome,
            attempt.status,
            retry,
        )


def _verdict(attempts: tuple[Attempt, ...]) -> AllChoicesUnavailable | AllChoicesRefused:
    if not attempts:
        return AllChoicesRefused("no model choices were given", attempts)
    tried = ", ".join(
        f"{a.provider}:{a.model} {a.outcome}" + (f" (HTTP {a.status})" if a.status else "") for a in attempts
    )
    if any(a.outcome == "unavailable" for a in attempts):
        return AllChoicesUnavailable(f"every model choice failed: {tried}", attempts)
    return AllChoicesRefused(f"every model choice was refused: {tried}", attempts)
