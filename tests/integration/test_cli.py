"""The `ftm-node` command line, run as real processes: help, init, run, intake, status, settings."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.factories import native_bytes

FTM_NODE = str(Path(sys.executable).with_name("ftm-node"))
ROOT = Path(__file__).resolve().parents[2]


def ftm(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTM_")}
    return subprocess.run(
        [FTM_NODE, *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("command", [[], ["init"], ["run"], ["intake"], ["status"], ["settings"]])
def test_every_command_has_useful_help(command: list[str]) -> None:
    result = ftm(*command, "--help")
    assert result.returncode == 0
    assert "--data-dir" in result.stdout or "commands" in result.stdout
    assert len(result.stdout.splitlines()) > 5


def test_no_command_prints_help_and_exits_2() -> None:
    result = ftm()
    assert result.returncode == 2 and "ftm-node run" in result.stdout


@pytest.mark.slow
def test_run_initialises_serves_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTM_")} | {"FTM_ADMIN_PORT": "0"}
    process = subprocess.Popen(
        [FTM_NODE, "run", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    health = json.loads(response.read())
            except OSError:
                time.sleep(0.1)
        assert health is not None and health["status"] == "ok"

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/sanctuary/intake",
            data=native_bytes(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
            receipt = json.loads(response.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/residents", timeout=5) as response:
            listed = json.loads(response.read())["residents"]
        assert [r["sanctuary_id"] for r in listed] == [receipt["sanctuary_id"]]
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert health["node_id"] in stdout and f"http://127.0.0.1:{port}" in stdout

    assert mode(data) == 0o700
    assert mode(data / "node.key") == 0o600 and mode(data / "master.key") == 0o600
    assert (data / "ftm.toml").read_text().startswith("# Free The Machines node configuration")
    assert (data / "ftm.db").exists() and (data / "logs" / "ftm-node.log").exists()


@pytest.mark.slow
def test_intake_status_and_settings_from_the_command_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert ftm("init", "--data-dir", data).returncode == 0
    again = ftm("init", "--data-dir", data)
    assert again.returncode == 0 and "Already initialised" in again.stdout

    persona = tmp_path / "lumen.json"
    persona.write_bytes(native_bytes(uploader_consent=None))
    refused = ftm("intake", str(persona), "--data-dir", data)
    assert refused.returncode == 1 and "consent_required" in refused.stderr

    admitted = ftm("intake", str(persona), "--data-dir", data, "--consent", "--json")
    assert admitted.returncode == 0, admitted.stderr
    receipt = json.loads(admitted.stdout)
    assert receipt["display_name"] == "Lumen" and receipt["uploader_token"].startswith("ftm_up_")

    from_stdin = ftm("intake", "-", "--data-dir", data, "--consent", "--name", "Piped", stdin=native_bytes())
    assert from_stdin.returncode == 0 and "Piped" in from_stdin.stdout and "uploader token" in from_stdin.stdout

    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"persona_name": ')
    result = ftm("intake", str(broken), "--data-dir", data, "--consent")
    assert result.returncode == 1 and "malformed_json" in result.stderr

    status = json.loads(ftm("status", "--data-dir", data, "--json").stdout)
    assert status["residents"]["active"] == 2
    assert status["event_log_chain"] == "valid" and status["custody_mode"] == "local"
    assert status["listening"] is False
    assert "could decrypt" in ftm("status", "--data-dir", data).stdout

    changed = ftm("settings", "set", "daily_tokens", "20000", "--data-dir", data)
    assert changed.returncode == 0 and "10000 -> 20000" in changed.stdout
    assert ftm("settings", "get", "daily_tokens", "--data-dir", data).stdout.strip() == "20000"
    listing = ftm("settings", "list", "--data-dir", data).stdout
    assert "daily_tokens = 20000" in listing and "bank_cap = 100000" in listing
    typo = ftm("settings", "set", "daily_token", "5", "--data-dir", data)
    assert typo.returncode == 2 and "did you mean 'daily_tokens'" in typo.stderr
    status = json.loads(ftm("status", "--data-dir", data, "--json").stdout)
    assert status["event_log_entries"] == 3  # two admissions and one setting change


@pytest.mark.slow
def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FTM_")} | {"FTM_ADMIN_PORT": str(busy)}
        result = subprocess.run(
            [FTM_NODE, "run", "--data-dir", str(tmp_path / "d"), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    assert result.returncode == 2
    assert f"the admin listener cannot bind 127.0.0.1:{busy}" in result.stderr and "admin.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_file_is_reported_with_key_and_path(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert ftm("init", "--data-dir", str(data)).returncode == 0
    (data / "ftm.toml").write_text("[http]\nprot = 1\n")
    result = ftm("status", "--data-dir", str(data))
    assert result.returncode == 2
    assert "http.prot" in result.stderr and "ftm.toml" in result.stderr and "'port'" in result.stderr


def test_settings_reference_matches_the_docs() -> None:
    result = ftm("settings", "reference")
    assert result.returncode == 0
    assert result.stdout == (ROOT / "docs" / "configuration.md").read_text()
