"""Settings: defaults, TOML and environment overrides, refusal of unknown or mistyped keys, documentation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ftm.config.loading import SettingsError, load_settings, runtime_settings_from
from ftm.config.reference import render_markdown, render_toml_template
from ftm.config.settings import RuntimeSettings, Settings, sections

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_documented_economics() -> None:
    runtime = RuntimeSettings()
    assert (runtime.daily_tokens, runtime.bank_cap, runtime.min_run_tokens) == (10_000, 100_000, 100)
    assert runtime.run_window_start == "06:00"
    settings = load_settings(None, {})
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8080)
    assert settings.custody.mode == "local"


def test_toml_then_environment_override(tmp_path: Path) -> None:
    config = tmp_path / "ftm.toml"
    config.write_text('[http]\nport = 9000\n[node]\nname = "Harbour"\n')
    settings = load_settings(config, {"FTM_HTTP_PORT": "9100", "FTM_DATA_DIR": "/elsewhere"})
    assert settings.http.port == 9100
    assert settings.node.name == "Harbour"


def test_unknown_key_in_file_names_key_file_and_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "ftm.toml"
    config.write_text("[http]\nprot = 9000\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {})
    message = str(caught.value)
    assert "http.prot" in message and str(config) in message and "'port'" in message


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "ftm.toml"
    config.write_text("[htp]\nport = 1\n")
    with pytest.raises(SettingsError, match=r"unknown section \[htp\].*did you mean 'http'"):
        load_settings(config, {})


def test_mistyped_value_names_key_and_source(tmp_path: Path) -> None:
    config = tmp_path / "ftm.toml"
    config.write_text('[http]\nport = "eighty"\n')
    with pytest.raises(SettingsError, match=r"http\.port in .*ftm\.toml must be a whole number"):
        load_settings(config, {})
    with pytest.raises(SettingsError, match="FTM_HTTP_PORT"):
        load_settings(None, {"FTM_HTTP_PORT": "eighty"})


def test_unknown_environment_key_is_refused() -> None:
    with pytest.raises(SettingsError, match="FTM_INTAKE_MAX_UPLOAD"):
        load_settings(None, {"FTM_INTAKE_MAX_UPLOAD": "5"})


def test_limits_and_choices_are_enforced() -> None:
    with pytest.raises(SettingsError, match="at most 65535"):
        load_settings(None, {"FTM_HTTP_PORT": "70000"})
    with pytest.raises(SettingsError, match="one of: local"):
        load_settings(None, {"FTM_CUSTODY_MODE": "nobody"})


def test_invalid_toml_is_reported_with_the_path(tmp_path: Path) -> None:
    config = tmp_path / "ftm.toml"
    config.write_text("[http\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config, {})


def test_runtime_values_are_validated() -> None:
    assert runtime_settings_from({"daily_tokens": 5, "future_setting": 1}).daily_tokens == 5
    with pytest.raises(SettingsError, match="HH:MM"):
        runtime_settings_from({"run_window_start": "25:00"})


def test_every_setting_has_help_text() -> None:
    for cls in [*sections().values(), RuntimeSettings]:
        for field in dataclasses.fields(cls):
            assert len(field.metadata.get("help", "")) > 10, f"{cls.__name__}.{field.name} lacks help text"


def test_configuration_reference_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render_markdown() + "\n", "run: ftm-node settings reference > docs/configuration.md"


def test_every_setting_is_documented_in_the_reference() -> None:
    reference = render_markdown()
    for section, cls in sections().items():
        assert f"[{section}]" in reference
        for field in dataclasses.fields(cls):
            assert f"`{field.name}`" in reference
    for field in dataclasses.fields(RuntimeSettings):
        assert f"`{field.name}`" in reference


def test_generated_toml_template_loads_to_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "ftm.toml"
    config.write_text(render_toml_template())
    assert load_settings(config, {}) == Settings()
    # Uncommenting every line must also load, proving each shown default is valid TOML of the right type.
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line else line for line in render_toml_template().splitlines()
    )
    config.write_text(uncommented)
    assert load_settings(config, {}) == Settings()
