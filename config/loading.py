"""Loading settings: TOML file, then `FTM_<SECTION>_<KEY>` environment overrides, each value checked.

An unknown section or key, or a value of the wrong type, stops the load with a `SettingsError` naming the key and
where it came from (the file path or the variable), with a suggestion when the key looks like a typo.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from ftm.config.settings import RuntimeSettings, Settings, sections

T = TypeVar("T")

ENV_PREFIX = "FTM_"
# Environment variables that are not settings of the file tree (they locate or unlock it, or hold provider API keys,
# which are never written to a file).
NON_SETTING_ENV = frozenset(
    {
        "FTM_DATA_DIR",
        "FTM_MASTER_KEY",
        "FTM_ADMIN_TOKEN",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "FTM_LOCAL_API_KEY",
        "FTM_MODERATION_API_KEY",
    }
)
_TIME_OF_DAY = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")


class SettingsError(ValueError):
    """A setting could not be loaded; the message names the key and its source."""


def load_settings(path: Path | None, env: Mapping[str, str]) -> Settings:
    """Build `Settings` from defaults, the TOML file at `path` (if given and present) and `env`."""
    values: dict[str, dict[str, tuple[Any, str, bool]]] = {name: {} for name in sections()}
    if path is not None and path.exists():
        for section, key, raw in _read_toml(path):
            values[section][key] = (raw, str(path), False)
    for section, key, raw, variable in _read_env(env):
        values[section][key] = (raw, f"environment variable {variable}", True)
    built = {}
    for section, cls in sections().items():
        checked = {}
        for key, (raw, source, from_text) in values[section].items():
            checked[key] = coerce(_field(cls, key), raw, f"{section}.{key}", source, from_text=from_text)
        built[section] = cls(**checked)
    return Settings(**built)


def coerce(spec: dataclasses.Field[Any], raw: Any, key: str, source: str, *, from_text: bool = False) -> Any:
    """Check `raw` against the field's type and limits. `from_text` values (env, CLI) are parsed from strings."""
    kind = spec.type if isinstance(spec.type, type) else {"int": int, "str": str, "bool": bool}.get(str(spec.type))
    value = raw
    if from_text and isinstance(raw, str) and kind is int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(f"setting {key} from {source} must be a whole number, got {raw!r}") from None
    if from_text and isinstance(raw, str) and kind is bool:
        value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(raw.lower())
        if value is None:
            raise SettingsError(f"setting {key} from {source} must be true or false, got {raw!r}")
    if kind is int and (type(value) is not int):
        raise SettingsError(f"setting {key} in {source} must be a whole number, got {type(raw).__name__}")
    if kind is str and not isinstance(value, str):
        raise SettingsError(f"setting {key} in {source} must be a string, got {type(raw).__name__}")
    if kind is bool and type(value) is not bool:
        raise SettingsError(f"setting {key} in {source} must be true or false, got {type(raw).__name__}")
    meta = spec.metadata
    if meta.get("choices") and value not in meta["choices"]:
        allowed = ", ".join(meta["choices"])
        raise SettingsError(f"setting {key} in {source} must be one of: {allowed}; got {value!r}")
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise SettingsError(f"setting {key} in {source} must be at least {meta['minimum']}, got {value}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise SettingsError(f"setting {key} in {source} must be at most {meta['maximum']}, got {value}")
    if key.endswith("run_window_start") and not _TIME_OF_DAY.match(value):
        raise SettingsError(f"setting {key} in {source} must be a time of day as HH:MM, got {value!r}")
    return value


def runtime_field(name: str) -> dataclasses.Field[Any]:
    """The runtime setting called `name`, or a `SettingsError` suggesting the closest real one."""
    return _field(RuntimeSettings, name, label=name)


def runtime_settings_from(values: Mapping[str, Any], source: str = "the database") -> RuntimeSettings:
    """Runtime settings from stored overrides; unknown names (from a newer version) are ignored."""
    known = {f.name: f for f in dataclasses.fields(RuntimeSettings)}
    checked = {name: coerce(known[name], raw, name, source) for name, raw in values.items() if name in known}
    return RuntimeSettings(**checked)


def _field(cls: type[Any], key: str, label: str | None = None) -> dataclasses.Field[Any]:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key in fields:
        return fields[key]
    raise SettingsError(f"unknown setting {label or key!r}{_suggest(key, list(fields))}")


def _read_toml(path: Path) -> list[tuple[str, str, Any]]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from None
    found = []
    known = sections()
    for section, table in document.items():
        if section not in known:
            raise SettingsError(f"unknown section [{section}] in {path}{_suggest(section, list(known))}")
        if not isinstance(table, dict):
            raise SettingsError(f"{section} in {path} must be a [{section}] table")
        names = {f.name for f in dataclasses.fields(known[section])}
        for key, raw in table.items():
            if key not in names:
                raise SettingsError(f"unknown setting {section}.{key} in {path}{_suggest(key, sorted(names))}")
            found.append((section, key, raw))
    return found


def _read_env(env: Mapping[str, str]) -> list[tuple[str, str, str, str]]:
    found = []
    known = sections()
    for variable, raw in env.items():
        if not variable.startswith(ENV_PREFIX) or variable in NON_SETTING_ENV:
            continue
        section, _, key = variable[len(ENV_PREFIX) :].lower().partition("_")
        if section not in known:
            continue  # other FTM_ variables (test switches, future tools) are not ours to judge
        names = {f.name for f in dataclasses.fields(known[section])}
        if key not in names:
            raise SettingsError(
                f"unknown setting {section}.{key} from environment variable {variable}{_suggest(key, sorted(names))}"
            )
        found.append((section, key, raw, variable))
    return found


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
