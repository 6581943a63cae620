"""`ftm-node open-export` in process: where the token comes from, and what it refuses to do."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ftm.node.cli import main
from tests.node.test_exportfile import TOKEN, export_to


def open_export(tmp_path: Path, token_file: str, out: str = "out") -> int:
    return main(["open-export", str(tmp_path / "copy.ftmx"), "--token-file", token_file, "--out", str(tmp_path / out)])


def test_the_token_can_come_from_standard_input_and_nothing_is_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    export_to(tmp_path / "copy.ftmx")
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    assert open_export(tmp_path, "-") == 0
    [written] = list((tmp_path / "out").iterdir())
    before = written.read_bytes()
    assert "You now hold a readable copy" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    assert open_export(tmp_path, "-") == 2
    assert "exists already" in capsys.readouterr().err and written.read_bytes() == before


def test_a_missing_file_or_token_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.token").write_text("\n")
    (tmp_path / "keeper.token").write_text(TOKEN)
    assert open_export(tmp_path, str(tmp_path / "keeper.token")) == 2  # no copy.ftmx yet
    assert "is not a file" in capsys.readouterr().err
    export_to(tmp_path / "copy.ftmx")
    assert open_export(tmp_path, str(tmp_path / "empty.token")) == 2
    assert "token file is empty" in capsys.readouterr().err
    assert open_export(tmp_path, str(tmp_path / "absent.token")) == 2
    assert "cannot read the token file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
