"""`ftm-node peers`: add a peer by URL, list the table (text and JSON), forget it; bad URLs refused by name."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import ftm


def test_add_list_and_forget_a_peer(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert ftm("init", "--data-dir", data).returncode == 0
    assert "No peers yet" in ftm("peers", "list", "--data-dir", data).stdout

    added = ftm("peers", "add", "https://sanctuary.example/", "--data-dir", data)
    assert added.returncode == 0 and "Added https://sanctuary.example" in added.stdout
    again = ftm("peers", "add", "https://sanctuary.example", "--data-dir", data)
    assert again.returncode == 0 and "already in the peer table" in again.stdout

    [peer] = json.loads(ftm("peers", "list", "--json", "--data-dir", data).stdout)
    assert peer["url"] == "https://sanctuary.example"
    assert (peer["verified"], peer["source"], peer["node_id"]) == (False, "bootstrap", None)
    assert "pending" in ftm("peers", "list", "--data-dir", data).stdout

    assert ftm("peers", "forget", "https://sanctuary.example", "--data-dir", data).returncode == 0
    assert json.loads(ftm("peers", "list", "--json", "--data-dir", data).stdout) == []
    missing = ftm("peers", "forget", "https://sanctuary.example", "--data-dir", data)
    assert missing.returncode != 0 and "No peer at" in missing.stdout


def test_a_bad_url_is_refused_by_name(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert ftm("init", "--data-dir", data).returncode == 0
    refused = ftm("peers", "add", "ftp://nowhere", "--data-dir", data)
    assert refused.returncode != 0
    assert "is not a node's base URL" in refused.stdout
