"""The keeper's settings: defaults, `keeper.toml` and `FTM_KEEPER_*` overrides, unknown keys refused by name,
the `[policy]` section in step with the policy's own settings, and the commented template `init` writes."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from ftm.config.keepersettings import (
    KeeperPolicySettings,
    keeper_sections,
    load_keeper_settings,
    render_keeper_toml,
)
from ftm.config.loading import SettingsError
from ftm.keeper.daemon import policy_settings
from ftm.keeper.policy import PolicySettings


def test_defaults() -> None:
    settings = load_keeper_settings(None, {})
    assert (settings.http.host, settings.http.port, settings.http.public_url) == ("127.0.0.1", 8090, "")
    assert settings.limits.max_replica_bytes == 4 * 1024**3 and settings.limits.max_residents == 0
    assert settings.log.level == "INFO"
    assert policy_settings(settings) == PolicySettings()


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "keeper.toml"
    path.write_text('[http]\nport = 9001\npublic_url = "https://keeper.example"\n[policy]\nmove_delay_seconds = 60\n')
    settings = load_keeper_settings(path, {"FTM_KEEPER_HTTP_PORT": "9002", "FTM_KEEPER_LIMITS_MAX_RESIDENTS": "5"})
    assert (settings.http.port, settings.http.public_url) == (9002, "https://keeper.example")
    assert (settings.policy.move_delay_seconds, settings.limits.max_residents) == (60, 5)
    assert policy_settings(settings).move_delay_seconds == 60
    ignored = load_keeper_settings(None, {"FTM_HTTP_PORT": "1", "FTM_KEEPER_DATA_DIR": "/x"})  # not keeper settings
    assert ignored.http.port == 8090


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[htp]\nport = 1\n", {}, r"unknown section \[htp\].*did you mean .http."),
        ("[http]\nprot = 1\n", {}, "did you mean 'port'"),
        ("[http]\nport = 'x'\n", {}, "must be a whole number"),
        ("[policy]\nwindow_grace_seconds = 9999\n", {}, "at most 3600"),
        ("[log]\nlevel = 'LOUD'\n", {}, "must be one of"),
        ("", {"FTM_KEEPER_HTTP_PROT": "1"}, "environment variable FTM_KEEPER_HTTP_PROT"),
        ("", {"FTM_KEEPER_POLICI_X": "1"}, "unknown section 'polici'"),
    ],
)
def test_unknown_or_bad_settings_are_refused_by_name(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "keeper.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_keeper_settings(path, env)


def test_the_policy_section_is_the_policys_own_settings() -> None:
    ours = {f.name: (f.default, dict(f.metadata)) for f in dataclasses.fields(KeeperPolicySettings)}
    theirs = {f.name: (f.default, dict(f.metadata)) for f in dataclasses.fields(PolicySettings)}
    assert ours == theirs


def test_the_template_lists_every_setting_and_loads_as_the_defaults(tmp_path: Path) -> None:
    text = render_keeper_toml(public_url="https://keeper.example")
    for section, cls in keeper_sections().items():
        assert f"[{section}]" in text
        for spec in dataclasses.fields(cls):
            assert f"{spec.name} = " in text and spec.metadata["help"] in text
    assert tomllib.loads(text) == {
        "http": {"public_url": "https://keeper.example"},
        "policy": {},
        "limits": {},
        "strangers": {},
        "log": {},
    }
    path = tmp_path / "keeper.toml"
    path.write_text(text)
    assert load_keeper_settings(path, {}).http.public_url == "https://keeper.example"


def test_every_setting_is_documented_in_docs_keeper_md() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "keeper.md").read_text()
    for section, cls in keeper_sections().items():
        for spec in dataclasses.fields(cls):
            assert f"| `{section}.{spec.name}` | `{_doc_default(spec.default)}` |" in text
    assert "FTM_KEEPER_DATA_DIR" in text


def _doc_default(value: object) -> str:
    return '""' if value == "" else str(value)
