"""`ftm-node open-export`, run as a real process on a Keeper's machine: no node, just the file and the token."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.factories import CANARY
from tests.integration.test_cli import ftm
from tests.node.test_exportfile import TOKEN, export_to
from tests.node.test_persona import make_package


def test_open_export_writes_the_persona_and_says_what_the_keeper_holds(tmp_path: Path) -> None:
    export_to(tmp_path / "copy.ftmx")
    (tmp_path / "keeper.token").write_text(TOKEN + "\n")
    result = ftm(
        "open-export", str(tmp_path / "copy.ftmx"), "--token-file", str(tmp_path / "keeper.token"),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "You now hold a readable copy of Lumen" in result.stdout and "Look after this." in result.stdout
    [written] = list((tmp_path / "out").iterdir())
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert json.loads(written.read_text())["system_prompt"] == make_package().system_prompt
    assert TOKEN not in result.stdout + result.stderr


def test_a_wrong_token_is_refused_without_writing(tmp_path: Path) -> None:
    export_to(tmp_path / "copy.ftmx")
    (tmp_path / "wrong.token").write_text("ftm_kp_not-this-one\n")
    wrong = ftm(
        "open-export", str(tmp_path / "copy.ftmx"), "--token-file", str(tmp_path / "wrong.token"),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert wrong.returncode == 1 and "does not open with this token" in wrong.stderr
    assert not (tmp_path / "out").exists()
    assert CANARY not in wrong.stdout + wrong.stderr
    assert "--token-file" in ftm("open-export", "--help").stdout
