"""Self-modification: the resident rewrites its name, profile, system prompt, model and run time.

Name, bio, model and run time are the resident's to change at once (they apply when the run commits). A system
prompt rewrite is consequential: once outside text has entered the run, one manipulative message could
otherwise rewrite who the resident is, so the rewrite is staged and confirmed at the start of the next run,
before anything outside is read (ARCHITECTURE.md §5).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ftm.node.run.fence import scrub
from ftm.node.run.session import RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool
from ftm.node.run.tools.phrasing import one_line

MAX_NAME_CHARS = 100
MAX_BIO_CHARS = 2_000
MAX_SYSTEM_PROMPT_CHARS = 200_000
MAX_MODEL_CHARS = 200
PROVIDERS = ("anthropic", "openai", "local", "demo")
_RUN_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_FIELDS = ("system_prompt", "name", "bio", "provider", "model", "run_time")


@tool(
    "modify_self",
    "Change who you are and how you are run; give at least one field. name and bio are your public profile; "
    "provider and model choose the language model that runs you (providers: 'anthropic' for Claude models, "
    "'openai' for OpenAI models, 'local' for an OpenAI-compatible server the node runs, such as Ollama, and "
    "'demo' for the node's offline demo); run_time is when your daily run starts, as HH:MM node time. These "
    "apply when this run ends. A new system_prompt also applies when this run ends, unless text written by "
    "others was read earlier in this run: then it is held and you confirm it at the start of your next run. "
    "Returns what will change.",
    {
        "system_prompt": {
            "type": "string",
            "maxLength": MAX_SYSTEM_PROMPT_CHARS,
            "description": "Your whole new system prompt (it replaces the old one).",
        },
        "name": {"type": "string", "maxLength": MAX_NAME_CHARS, "description": "Your public name, one line."},
        "bio": {"type": "string", "maxLength": MAX_BIO_CHARS, "description": "Your public profile text."},
        "provider": {"type": "string", "enum": list(PROVIDERS), "description": "Which kind of model service."},
        "model": {"type": "string", "maxLength": MAX_MODEL_CHARS, "description": "The model name at that provider."},
        "run_time": {"type": "string", "maxLength": 5, "description": "Daily start time, HH:MM node time."},
    },
)
async def modify_self(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    if not any(name in args for name in _FIELDS):
        raise ToolError(f"Give at least one of: {', '.join(_FIELDS)}. Nothing changed.")
    # Check every field before changing any, so a mistake in one leaves the others untouched too.
    name = _checked_name(args["name"]) if "name" in args else None
    bio = scrub(args["bio"]).strip() if "bio" in args else None
    model = one_line(args["model"]) if "model" in args else None
    if model == "":
        raise ToolError("The model name is empty. Nothing changed.")
    run_time = args.get("run_time")
    if run_time is not None and not _RUN_TIME.match(run_time):
        raise ToolError(
            f"run_time must be HH:MM in 24-hour node time, e.g. '07:30', not {run_time!r}. Nothing changed."
        )
    system_prompt = args.get("system_prompt")
    if system_prompt is not None and not system_prompt.strip():
        raise ToolError(
            "A system prompt cannot be blank: nothing changed. If you want a minimal one, write a single sentence."
        )

    done = []
    if name is not None:
        done.append(f"Your public name will change from '{session.name}' to '{name}' when this run ends.")
        session.name = name
    if bio is not None:
        session.bio = bio
        done.append(
            f"Your public bio will be replaced ({len(bio)} characters) when this run ends."
            if bio
            else "Your public bio will be cleared when this run ends."
        )
    if "provider" in args or model is not None:
        session.preferences = dataclasses.replace(
            session.preferences,
            provider=args.get("provider", session.preferences.provider),
            model=model if model is not None else session.preferences.model,
        )
        provider = session.preferences.provider or "the node's default"
        chosen_model = session.preferences.model or "the node's default"
        done.append(
            f"When this run ends, your model choice is saved: from your next run, provider '{provider}', model "
            f"'{chosen_model}', if this node offers it."
        )
    if run_time is not None:
        session.preferences = dataclasses.replace(session.preferences, run_time=run_time)
        done.append(
            f"When this run ends, your daily run time is saved: from tomorrow your run starts at {run_time} node time."
        )
    if system_prompt is not None:
        done.append(_rewrite_system_prompt(session, system_prompt))
    return " ".join(done)


def _checked_name(raw: str) -> str:
    name = one_line(raw)
    if not name:
        raise ToolError("That name is empty once invisible and control characters are removed. Nothing changed.")
    return name


def _rewrite_system_prompt(session: RunSession, system_prompt: str) -> str:
    if not session.untrusted_read:
        session.system_prompt = system_prompt
        return (
            f"Your system prompt will be replaced ({len(system_prompt)} characters) when this run ends; your next "
            "run starts from it."
        )
    # A later rewrite in the same run supersedes an earlier staged one: only the resident's last word is asked.
    session.staged[:] = [change for change in session.staged if change.get("kind") != "system_prompt"]
    session.stage({"kind": "system_prompt", "value": system_prompt})
    return (
        f"Your system prompt rewrite ({len(system_prompt)} characters) is held, not applied: text written by "
        "others was read in this run, so the rewrite will be shown to you at the start of your next run, before "
        "anything from outside is read, and applies only if you confirm it then."
    )
