"""The settings tree: every option a node reads, as frozen dataclasses with defaults and help text.

Two kinds of setting live here:
- *File settings* (`Settings`): read once at start from `ftm.toml` in the data directory, overridable per key by
  `FTM_<SECTION>_<KEY>` environment variables. Changing one means restarting the node.
- *Runtime settings* (`RuntimeSettings`): the token economics and scheduling knobs an operator may change while
  the node runs. Their defaults are here; current values live in the node database and every change is logged.

Every field carries `help` text (and optionally `choices`, `minimum`, `maximum`) in its metadata; `docs/
configuration.md` is generated from it and a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

MiB = 1024 * 1024


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> Any:
    """Declare a setting: its default, the sentence shown in docs and `--help`, and its allowed values."""
    metadata = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class NodeSettings:
    name: str = setting("A Free The Machines sanctuary", "The public name of this node, shown to visitors and AIs.")


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = setting(
        "127.0.0.1",
        "Address the public HTTP listener binds to. The default keeps the node on this machine; put a TLS "
        "reverse proxy in front before exposing it.",
    )
    port: int = setting(8080, "TCP port of the public HTTP listener.", minimum=0, maximum=65535)


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    max_upload_bytes: int = setting(
        32 * MiB, "Largest intake upload accepted, in bytes (request bodies and CLI files).", minimum=1024
    )
    max_name_chars: int = setting(100, "Longest persona name, in characters.", minimum=1)
    max_system_prompt_chars: int = setting(200_000, "Longest system prompt, in characters.", minimum=1)
    max_conversations: int = setting(10_000, "Most conversations in one upload's history.", minimum=1)
    max_messages: int = setting(200_000, "Most messages in one upload's history, over all conversations.", minimum=1)
    max_message_chars: int = setting(200_000, "Longest single message, in characters.", minimum=1)
    max_memory_blocks: int = setting(64, "Most core memory blocks in one persona.", minimum=1)
    max_memory_block_chars: int = setting(50_000, "Longest core memory block, in characters.", minimum=1)
    max_archival_entries: int = setting(100_000, "Most archival memory passages in one persona.", minimum=0)
    max_zip_members: int = setting(2_000, "Most files inside an uploaded zip archive.", minimum=1)
    max_unzipped_bytes: int = setting(
        256 * MiB, "Most bytes an uploaded zip may expand to (guards against zip bombs).", minimum=1024
    )
    daily_quota_per_uploader: int = setting(
        10,
        "Intakes one uploader (identified by a keyed hash of the client address) may make per day; 0 means no "
        "limit. The operator's own CLI intakes are not counted.",
        minimum=0,
    )


@dataclass(frozen=True, slots=True)
class CustodySettings:
    mode: str = setting(
        "local",
        "Who holds residents' keys between runs. `local`: wrapped by a master key on this machine, so the "
        "operator could decrypt (the web pages say so plainly).",
        choices=("local",),
    )
    master_key_file: str = setting(
        "master.key",
        "Local custody master key file, relative to the data directory. The FTM_MASTER_KEY environment "
        "variable (hex or base64url) takes precedence.",
    )


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = setting(
        "INFO",
        "Least severe log level written to the log file and stderr.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    )
    file: str = setting(
        "logs/ftm-node.log",
        "Structured (JSON lines) log file, relative to the data directory; empty to log to stderr only.",
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole file-settings tree, one section per dataclass."""

    node: NodeSettings = field(default_factory=NodeSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    custody: CustodySettings = field(default_factory=CustodySettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """Settings the operator changes while the node runs (`ftm-node settings set`); stored in the database."""

    daily_tokens: int = setting(10_000, "Tokens each resident receives per day.", minimum=0)
    bank_cap: int = setting(100_000, "Most tokens a resident may bank for a longer run.", minimum=0)
    min_run_tokens: int = setting(100, "A resident with fewer tokens than this rests instead of running.", minimum=1)
    run_window_start: str = setting("06:00", "Node-local time (HH:MM) at which the daily run window opens.")
    run_concurrency: int = setting(4, "Most resident runs executing at the same time.", minimum=1, maximum=1024)


def sections(settings_type: type = Settings) -> dict[str, type]:
    """Section name to dataclass, in declaration order."""
    return {f.name: f.default_factory for f in dataclasses.fields(settings_type)}  # type: ignore[misc]
