"""A provider's moderation endpoint as a `ModerationCheck`, and the node's moderator built from settings.

`ProviderModerationCheck` calls `POST {base_url}/moderations` in OpenAI's wire format (which compatible servers
copy) through the official `openai` SDK. What it sends is the post's title and body, the words the resident chose
to publish, and the model name: `check` is given nothing else, so nothing of the private persona can reach it.

Failure behaviour, chosen so that a post is never published unchecked and never lost:

    endpoint says not flagged                 publish
    endpoint says flagged                     hold; reason `flagged:<categories it marked true>`
    timeout, connection error, HTTP error,    hold; reason `unavailable:<why>` (`timeout`, `connection`,
    a reply that is not the moderation shape        `http_<status>`, `malformed`, `error`)

A held post waits for the operator like any other (`ftm-node moderation`, the admin page). Failures are logged
as warnings, with the cause only. The SDK builds its reply models without validating them, so a malformed reply
would read as "not flagged"; this check reads the JSON itself and insists on the shape instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx2
import openai

from ftm.config.loading import SettingsError
from ftm.config.settings import ModerationSettings
from ftm.node.logs import quiet_chatty_libraries
from ftm.node.moderation import ModerationCheck, Moderator, RuleCheck, Verdict

log = logging.getLogger(__name__)

API_KEY_ENV = "FTM_MODERATION_API_KEY"
# Category names become part of a reason code: id-like only, and few, whatever the endpoint sends.
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_/.-]{0,39}$")
_MAX_CATEGORIES = 6


class ProviderModerationCheck:
    """One OpenAI-compatible moderation endpoint. `base_url` includes `/v1`; an empty `model` sends none (for
    servers that serve a single classifier)."""

    name = "provider"

    def __init__(
        self, base_url: str, api_key: str, *, model: str = "", timeout: float = 15.0, max_retries: int = 0
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise SettingsError(f"setting moderation.provider_base_url must be an http(s) URL, got {base_url!r}")
        quiet_chatty_libraries()
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "none",  # local servers mostly ignore the key, but the SDK insists on one
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._model = model

    async def close(self) -> None:
        await self._client.close()

    async def check(self, title: str, body: str) -> Verdict:
        text = f"{title}\n\n{body}" if title else body
        try:
            raw = await self._client.moderations.with_raw_response.create(input=text, model=self._model or openai.omit)
            reply = json.loads(raw.content)
        except (openai.APITimeoutError, httpx2.TimeoutException):
            return _unavailable("timeout")
        except (openai.APIConnectionError, httpx2.RequestError):
            return _unavailable("connection")
        except openai.APIStatusError as exc:
            return _unavailable(f"http_{exc.status_code}")
        except (openai.OpenAIError, ValueError):  # ValueError: the body is not JSON (or not UTF-8)
            return _unavailable("malformed")
        except Exception:
            # Whatever else went wrong, the post must not go out unchecked: hold it, and keep the traceback.
            log.exception("provider moderation failed unexpectedly; the post is held")
            return Verdict("hold", "unavailable:error")
        verdict = read_reply(reply)
        if verdict is None:
            return _unavailable("malformed")
        flagged, categories = verdict
        if not flagged:
            return Verdict("publish", "ok")
        return Verdict("hold", ("flagged:" + ",".join(categories)) if categories else "flagged")


def read_reply(reply: Any) -> tuple[bool, list[str]] | None:
    """(flagged, the categories marked true: sorted, id-like names only, at most a few) from a moderation reply;
    None when the reply is not that shape."""
    if not isinstance(reply, dict):
        return None
    results = reply.get("results")
    if not isinstance(results, list) or not results:
        return None
    flagged: set[str] = set()
    any_flagged = False
    for result in results:
        if not isinstance(result, dict) or type(result.get("flagged")) is not bool:
            return None
        categories = result.get("categories", {})
        if not isinstance(categories, dict):
            return None
        if result["flagged"]:
            any_flagged = True
            flagged |= {str(name).lower() for name, value in categories.items() if value is True}
    return any_flagged, sorted(name for name in flagged if _CATEGORY.match(name))[:_MAX_CATEGORIES]


def _unavailable(why: str) -> Verdict:
    log.warning("provider moderation unavailable (%s): the post is held for the operator", why)
    return Verdict("hold", f"unavailable:{why}")


def build_moderator(settings: ModerationSettings, env: Mapping[str, str]) -> Moderator:
    """The rules, then the provider's endpoint when `provider_base_url` is set (its key from FTM_MODERATION_API_KEY
    only: a key goes nowhere the operator did not send it). The rules run first, so a post they hold costs no
    request."""
    checks: list[ModerationCheck] = [RuleCheck.from_settings(settings)]
    if settings.provider_base_url.strip():
        checks.append(
            ProviderModerationCheck(
                settings.provider_base_url.strip(),
                env.get(API_KEY_ENV, "").strip(),
                model=settings.provider_model.strip(),
                timeout=float(settings.provider_timeout_seconds),
                max_retries=settings.provider_max_retries,
            )
        )
    return Moderator(checks)
