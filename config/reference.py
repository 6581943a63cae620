"""The settings reference, rendered from the dataclasses: `docs/configuration.md` and the commented `ftm.toml`.

Both come from the same metadata as validation, so the documentation cannot drift from the code (a test
compares the committed Markdown with `render_markdown()`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ftm.config.settings import RuntimeSettings, sections


def render_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from config/settings.py by `ftm-node settings reference`; a test keeps it in step. -->",
        "",
        "## File settings (`ftm.toml`)",
        "",
        "Read at start from `ftm.toml` in the data directory. Any key can be overridden by an environment variable",
        "`FTM_<SECTION>_<KEY>` in upper case, e.g. `FTM_HTTP_PORT=9000`. Unknown keys are refused with the key's",
        "name and where it came from. Changing a file setting takes effect at the next start.",
        "",
    ]
    for section, cls in sections().items():
        lines += [f"### `[{section}]`", "", "| key | default | meaning |", "|---|---|---|"]
        lines += [_row(f) for f in dataclasses.fields(cls)]
        lines.append("")
    lines += [
        "## Runtime settings (in the database)",
        "",
        "Changed while the node runs with `ftm-node settings set NAME VALUE`; read with `ftm-node settings get`.",
        "Every change is recorded in the node's signed event log with the old and new value.",
        "",
        "| name | default | meaning |",
        "|---|---|---|",
    ]
    lines += [_row(f) for f in dataclasses.fields(RuntimeSettings)]
    lines += [
        "",
        "## Environment variables that are not settings",
        "",
        "| variable | meaning |",
        "|---|---|",
        "| `FTM_DATA_DIR` | The data directory, when `--data-dir` is not given (default `./ftm-data`). |",
        "| `FTM_ADMIN_TOKEN` | The admin listener's bearer token, instead of the token file. |",
        "| `FTM_MASTER_KEY` | The local custody master key as hex or base64url, instead of the key file. |",
        "| `ANTHROPIC_API_KEY` | API key for the Anthropic provider; without it the provider is not offered. |",
        "| `OPENAI_API_KEY` | API key for the OpenAI provider; without it the provider is not offered. |",
        "| `FTM_LOCAL_API_KEY` | API key for the local OpenAI-compatible server, if it needs one. |",
        "",
    ]
    return "\n".join(lines)


def render_toml_template() -> str:
    """A commented `ftm.toml` listing every setting at its default, for `ftm-node init` to write."""
    lines = [
        "# Free The Machines node configuration.",
        "# Every setting is shown commented out at its default; uncomment a line to change it.",
        "# Environment variables FTM_<SECTION>_<KEY> override this file. Reference: docs/configuration.md",
        "",
    ]
    for section, cls in sections().items():
        lines.append(f"[{section}]")
        for f in dataclasses.fields(cls):
            lines.append(f"# {f.metadata['help']}")
            lines.append(f"# {f.name} = {_toml_value(f.default)}")
        lines.append("")
    return "\n".join(lines)


def _row(f: dataclasses.Field[Any]) -> str:
    meaning = f.metadata["help"]
    if f.metadata.get("choices"):
        meaning += " One of: " + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + "."
    return f"| `{f.name}` | `{_toml_value(f.default)}` | {meaning} |"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)
