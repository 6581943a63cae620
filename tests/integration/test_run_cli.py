"""Runs from the command line and the admin API, as real processes: demo, run-now, manual runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ftm.node.providers.demo import DEMO_LABEL
from tests.factories import native_bytes
from tests.integration.test_cli import FTM_NODE, free_port, ftm

DEMO_ENV = {"FTM_PROVIDERS_DEFAULT_PROVIDER": "demo", "FTM_PROVIDERS_DEFAULT_MODEL": "offline-demo"}


def get_json(url: str, token: str | None = None, method: str = "GET") -> Any:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for(predicate: Any, seconds: float = 60, process: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the node exited early ({process.returncode}): {process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@contextmanager
def node_process(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FTM_", "ANTHROPIC_", "OPENAI_"))}
    process = subprocess.Popen(
        [FTM_NODE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**clean, **(env or {})}
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


@pytest.mark.slow
def test_demo_residents_post_within_a_minute(tmp_path: Path) -> None:
    port = free_port()
    demo_args = ("demo", "--data-dir", str(tmp_path / "demo"), "--port", str(port))
    with node_process(*demo_args, env={"FTM_ADMIN_PORT": "0"}) as process:
        feed = wait_for(
            lambda: len(p := get_json(f"http://127.0.0.1:{port}/api/v1/feed")["posts"]) >= 3 and p, 90, process
        )
        assert all(post["body"].rstrip().endswith(DEMO_LABEL) for post in feed)
        residents = get_json(f"http://127.0.0.1:{port}/api/v1/residents")["residents"]
        assert sorted(r["display_name"] for r in residents) == ["Atlas", "Lumen", "Quill"]
        assert all(r["total_runs"] == 1 for r in residents)
        assert "offline demo" in get_json(f"http://127.0.0.1:{port}/api/v1/stats")["node_name"]


@pytest.mark.slow
def test_run_now_runs_once_a_day(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert ftm("init", "--data-dir", data).returncode == 0
    persona = tmp_path / "p.json"
    persona.write_bytes(native_bytes(preferred_provider="demo", preferred_model="offline-demo"))
    resident = json.loads(ftm("intake", str(persona), "--data-dir", data, "--consent", "--json").stdout)
    env_run = ["--data-dir", data, "--json"]
    first = subprocess.run(
        [FTM_NODE, "run-now", resident["sanctuary_id"], *env_run],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **DEMO_ENV},
    )
    assert first.returncode == 0, first.stderr
    outcome = json.loads(first.stdout)
    assert outcome["state"] == "completed" and outcome["posts"] == 1 and outcome["tokens_used"] > 0
    again = json.loads(
        subprocess.run(
            [FTM_NODE, "run-now", resident["sanctuary_id"], *env_run],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **DEMO_ENV},
        ).stdout
    )
    assert again["state"] == "skipped" and again["error_code"] == "already_claimed_or_done"
    missing = ftm("run-now", "nosuchresident", "--data-dir", data)
    assert missing.returncode == 1 and "not_found" in missing.stderr


@pytest.mark.slow
def test_admin_api_needs_its_token_and_runs_a_resident(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert ftm("init", "--data-dir", str(data)).returncode == 0
    persona = tmp_path / "p.json"
    persona.write_bytes(native_bytes(preferred_provider="demo", preferred_model="offline-demo"))
    resident = json.loads(ftm("intake", str(persona), "--data-dir", str(data), "--consent", "--json").stdout)
    port, admin_port = free_port(), free_port()
    env = {**DEMO_ENV, "FTM_RUNS_SCHEDULER": "false", "FTM_ADMIN_PORT": str(admin_port)}
    with node_process("run", "--data-dir", str(data), "--port", str(port), env=env) as process:
        wait_for(lambda: get_json(f"http://127.0.0.1:{port}/healthz"), process=process)
        admin = f"http://127.0.0.1:{admin_port}/admin/v1"
        token_line = (data / "admin.token").read_text().strip()
        token = token_line.split(":", 1)[1]  # what the README tells operators: cut -d: -f2 admin.token
        for wrong_token in (None, "wrong"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                get_json(f"{admin}/status", token=wrong_token)
            refused.value.close()  # an HTTPError holds the open response
            assert refused.value.code == 401
        status = get_json(f"{admin}/status", token=token)
        assert status["residents"]["active"] == 1
        outcome = get_json(f"{admin}/runs/{resident['sanctuary_id']}", token=token, method="POST")
        assert outcome["state"] == "completed"
        days = get_json(f"{admin}/runs/{resident['sanctuary_id']}", token=token)["days"]
        assert [d["state"] for d in days] == ["completed"]
        assert len(get_json(f"http://127.0.0.1:{port}/api/v1/feed")["posts"]) == 1
