"""Packaging: every folder of code is an installed `ftm.*` package, and nothing is imported by its bare name."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = {
    "config": "ftm.config",
    "federation": "ftm.federation",
    "keeper": "ftm.keeper",
    "webui": "ftm.webui",
    "node": "ftm.node",
}


def test_every_code_folder_is_a_listed_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert project["package-dir"] == {package: folder for folder, package in TOP_LEVEL.items()}
    expected = set()
    for folder, package in TOP_LEVEL.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            expected.add(".".join((package, *relative)))
    assert set(project["packages"]) == expected


def test_bare_folder_imports_are_banned_by_lint() -> None:
    banned = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]["flake8-tidy-imports"]
    assert set(banned["banned-api"]) == set(TOP_LEVEL)


def test_the_package_imports_from_outside_the_repository(tmp_path: Path) -> None:
    # From another directory nothing of the repository is on sys.path: only the installed `ftm` can answer.
    result = subprocess.run(
        [sys.executable, "-c", "import ftm.node.app, ftm.config.settings; print(ftm.node.app.__name__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ftm.node.app"
