"""`ftm-node canary` as a real process: sign, show, verify the signature from the printed values alone."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import nacl.signing

from tests.integration.test_cli import ftm


def test_canary_set_and_show(tmp_path: Path) -> None:
    data = str(tmp_path / "node")
    assert ftm("init", "--data-dir", data).returncode == 0
    empty = ftm("canary", "show", "--data-dir", data)
    assert empty.returncode == 0 and "No canary" in empty.stdout

    signed = ftm("canary", "set", "No one has asked me to open a resident.", "--data-dir", data)
    assert signed.returncode == 0, signed.stderr
    assert "No one has asked me to open a resident." in signed.stdout and "signature:" in signed.stdout

    shown = ftm("canary", "show", "--json", "--data-dir", data)
    canary = json.loads(shown.stdout)
    assert canary["statement"] == "No one has asked me to open a resident." and canary["age_days"] == 0
    message = msgpack.packb([canary["signed_at"], canary["statement"]])
    nacl.signing.VerifyKey(bytes.fromhex(canary["public_key"])).verify(
        b"ftm-canary-v1\x00" + message, bytes.fromhex(canary["signature"])
    )
    status = json.loads(ftm("status", "--json", "--data-dir", data).stdout)
    assert status["event_log_chain"] == "valid" and status["event_log_entries"] == 1


def test_canary_set_without_a_statement_is_a_usage_error(tmp_path: Path) -> None:
    result = ftm("canary", "set", "--data-dir", str(tmp_path / "node"))
    assert result.returncode == 2 and "needs a statement" in result.stderr
    assert ftm("canary", "--help").returncode == 0
