"""The keeper daemon's settings (`ftm-keeper`): frozen dataclasses with defaults and help text, loaded from
`keeper.toml` in the keeper's data directory and `FTM_KEEPER_<SECTION>_<KEY>` environment variables.

The same rules as the node's settings (`ftm.config.settings`, `ftm.config.loading`): every value is checked
against its field's type and limits by `loading.coerce`, and an unknown section or key stops the load with a
`SettingsError` naming it and where it came from. The `[policy]` section carries the knobs of
`ftm.keeper.policy.PolicySettings` under the same names (config sits below the keeper package and cannot import
it; a test keeps the two in step), and the daemon hands them to the policy unchanged.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftm.config.loading import SettingsError, coerce
from ftm.config.settings import setting

GiB = 1024 * 1024 * 1024
DAY_SECONDS = 86_400
ENV_PREFIX = "FTM_KEEPER_"
DATA_DIR_ENV = "FTM_KEEPER_DATA_DIR"  # locates the settings file, so it is not a setting itself
CONFIG_NAME = "keeper.toml"


@dataclass(frozen=True, slots=True)
class KeeperHttpSettings:
    host: str = setting(
        "127.0.0.1",
        "Address the keeper's HTTP listener binds to. Hosts must reach it: put it behind a TLS reverse proxy (and "
        "set `public_url`) or bind a reachable address.",
    )
    port: int = setting(8090, "TCP port of the keeper's HTTP listener.", minimum=0, maximum=65535)
    public_url: str = setting(
        "",
        "The base URL at which hosts reach this keeper (`https://keeper.example`), as it tells a node when it "
        "enrols; `/keeper/v1/` is appended. Empty: `http://` with `host` and `port`, which only suits a keeper on "
        "the same machine or network as its host.",
    )


@dataclass(frozen=True, slots=True)
class KeeperPolicySettings:
    """The release policy's knobs, the same for every resident kept; `ftm.keeper.policy` uses this class itself
    (as `PolicySettings`), so the file and the policy cannot disagree. Checked on construction as well as on
    loading: the policy is also built directly (tests, tools)."""

    window_grace_seconds: int = setting(
        300,
        "Seconds a run's share request may come before or after the resident's run window, for clock skew.",
        minimum=0,
        maximum=3600,
    )
    move_delay_seconds: int = setting(
        DAY_SECONDS,
        "Seconds between a move claim and the first release to its destination; the host or a guardian may veto "
        "the move in that time.",
        minimum=1,
    )
    disaster_silence_seconds: int = setting(
        30 * DAY_SECONDS,
        "Seconds without a heartbeat or signed request from a resident's host before its guardians may open a "
        "disaster claim.",
        minimum=1,
    )
    disaster_wait_seconds: int = setting(
        7 * DAY_SECONDS,
        "Seconds between a disaster claim and the first release to the new host; any contact from the old host "
        "in that time cancels the claim.",
        minimum=1,
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            low, high = spec.metadata["minimum"], spec.metadata["maximum"]
            value = getattr(self, spec.name)
            if type(value) is not int or value < low or (high is not None and value > high):
                bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
                raise ValueError(f"{spec.name} is a whole number of seconds {bound}")


@dataclass(frozen=True, slots=True)
class KeeperLimitsSettings:
    max_replica_bytes: int = setting(
        4 * GiB,
        "Largest vault file (one resident's epoch) this keeper takes a copy of, in bytes; larger deposits are "
        "refused (`too_large`).",
        minimum=0,
    )
    max_residents: int = setting(
        0,
        "Most residents this keeper holds live epochs of, over all its hosts; deposits for further residents are "
        "refused (`keeper_full`). 0 means no limit.",
        minimum=0,
    )


@dataclass(frozen=True, slots=True)
class KeeperStrangersSettings:
    """How many refused release-policy requests a stranger may have logged. Every refusal is an entry in the
    keeper's signed log, which never shrinks; a key that is not a host, a guardian or a party to a claim or a
    release here gets a few, then `429 rate_limited`, counted but not logged (docs/keeper.md, "Strangers")."""

    burst_per_key: int = setting(
        10,
        "Release-policy requests (release, move, veto, disaster) one stranger's key may make at once before it "
        "is answered `429 rate_limited` instead of having its refusal logged.",
        minimum=1,
    )
    per_hour_per_key: int = setting(
        6, "Requests a stranger's key regains per hour, up to `burst_per_key`.", minimum=1, maximum=3_600_000
    )
    burst_all: int = setting(
        100,
        "Release-policy requests all strangers together may make at once, whatever their keys (one attacker "
        "can make any number of keys); beyond it every stranger is answered `429 rate_limited` for a while.",
        minimum=1,
    )
    per_hour_all: int = setting(
        120, "Requests all strangers together regain per hour, up to `burst_all`.", minimum=1, maximum=3_600_000
    )


@dataclass(frozen=True, slots=True)
class KeeperLogSettings:
    level: str = setting(
        "INFO",
        "Least severe log level written to stderr (ids and numbers only, never share or replica bytes).",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    )


@dataclass(frozen=True, slots=True)
class KeeperSettings:
    """The whole keeper settings tree, one section per dataclass."""

    http: KeeperHttpSettings = field(default_factory=KeeperHttpSettings)
    policy: KeeperPolicySettings = field(default_factory=KeeperPolicySettings)
    limits: KeeperLimitsSettings = field(default_factory=KeeperLimitsSettings)
    strangers: KeeperStrangersSettings = field(default_factory=KeeperStrangersSettings)
    log: KeeperLogSettings = field(default_factory=KeeperLogSettings)


def keeper_sections() -> dict[str, type]:
    """Section name to dataclass, in declaration order."""
    return {f.name: f.default_factory for f in dataclasses.fields(KeeperSettings)}  # type: ignore[misc]


def load_keeper_settings(path: Path | None, env: Mapping[str, str]) -> KeeperSettings:
    """Defaults, then the TOML file at `path` (if given and present), then `FTM_KEEPER_<SECTION>_<KEY>` from `env`."""
    sections = keeper_sections()
    values: dict[str, dict[str, tuple[Any, str, bool]]] = {name: {} for name in sections}
    if path is not None and path.exists():
        for section, key, raw in _read_toml(path, sections):
            values[section][key] = (raw, str(path), False)
    for section, key, raw, variable in _read_env(env, sections):
        values[section][key] = (raw, f"environment variable {variable}", True)
    built = {}
    for section, cls in sections.items():
        fields = {f.name: f for f in dataclasses.fields(cls)}
        checked = {
            key: coerce(fields[key], raw, f"{section}.{key}", source, from_text=from_text)
            for key, (raw, source, from_text) in values[section].items()
        }
        built[section] = cls(**checked)
    return KeeperSettings(**built)


def _read_toml(path: Path, sections: Mapping[str, type]) -> list[tuple[str, str, Any]]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from None
    found = []
    for section, table in document.items():
        if section not in sections:
            raise SettingsError(f"unknown section [{section}] in {path}{_suggest(section, list(sections))}")
        if not isinstance(table, dict):
            raise SettingsError(f"{section} in {path} must be a [{section}] table")
        names = sorted(f.name for f in dataclasses.fields(sections[section]))
        for key, raw in table.items():
            if key not in names:
                raise SettingsError(f"unknown setting {section}.{key} in {path}{_suggest(key, names)}")
            found.append((section, key, raw))
    return found


def _read_env(env: Mapping[str, str], sections: Mapping[str, type]) -> list[tuple[str, str, str, str]]:
    """`FTM_KEEPER_HTTP_PORT=9000` sets `http.port`. Unlike the node's loader, an unknown section is refused too:
    the whole `FTM_KEEPER_` prefix is the keeper's, so a misspelt variable must not pass silently."""
    found = []
    for variable, raw in env.items():
        if not variable.startswith(ENV_PREFIX) or variable == DATA_DIR_ENV:
            continue
        section, _, key = variable[len(ENV_PREFIX) :].lower().partition("_")
        if section not in sections:
            raise SettingsError(
                f"unknown section {section!r} in environment variable {variable}{_suggest(section, list(sections))}"
            )
        names = sorted(f.name for f in dataclasses.fields(sections[section]))
        if key not in names:
            raise SettingsError(
                f"unknown setting {section}.{key} from environment variable {variable}{_suggest(key, names)}"
            )
        found.append((section, key, raw, variable))
    return found


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def render_keeper_toml(*, public_url: str = "") -> str:
    """A commented `keeper.toml` with every setting at its default, for `ftm-keeper init` to write; `public_url`,
    when given, is written as a live setting."""
    lines = [
        "# Free The Machines keeper configuration.",
        "# Every setting is shown commented out at its default; uncomment a line to change it.",
        "# Environment variables FTM_KEEPER_<SECTION>_<KEY> override this file. Reference: docs/keeper.md",
        "",
    ]
    for section, cls in keeper_sections().items():
        lines.append(f"[{section}]")
        for f in dataclasses.fields(cls):
            lines.append(f"# {f.metadata['help']}")
            if section == "http" and f.name == "public_url" and public_url:
                lines.append(f"{f.name} = {_toml_value(public_url)}")
            else:
                lines.append(f"# {f.name} = {_toml_value(f.default)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)
