"""The scaffolding every `ftm-*` CLI shares: where the data directory is, and how a command's outcome becomes an
exit code and one line on stderr (the CLIs themselves run as processes in tests/integration)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ftm.config.commandline import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    add_command,
    data_dir_option,
    resolve_data_dir,
    run_command,
    top_parser,
)


class Misconfigured(Exception):
    pass


class Refused(Exception):
    pass


def _raise(error: BaseException) -> int:
    raise error


def _parser() -> argparse.ArgumentParser:
    common = data_dir_option("where things are", "FTM_TEST_DIR", "ftm-test")
    parser, commands = top_parser("ftm-test", "Start here:  ftm-test ok\n")
    ok = add_command(
        commands, "ok", lambda args: EXIT_OK if args.data_dir == Path("d") else 99, parents=[common], help="h",
        description="""\
            One line.

            example:
              ftm-test ok --data-dir d
            """,
    )  # fmt: skip
    assert ok.prog == "ftm-test ok"
    for name, error in (
        ("bad", Misconfigured("no such setting")),
        ("no", Refused("not yours")),
        ("stop", KeyboardInterrupt()),
    ):
        add_command(commands, name, lambda _, e=error: _raise(e), help=name, description=name)  # type: ignore[misc]
    return parser


def _run(*argv: str) -> int:
    return run_command(
        _parser(),
        list(argv),
        configuration_errors=(Misconfigured,),
        refusals=(Refused,),
        describe_refusal=lambda e: f"(code): {e}",
    )


def test_commands_end_in_their_exit_codes_with_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("ok", "--data-dir", "d") == EXIT_OK
    assert _run("bad") == EXIT_CONFIG
    assert capsys.readouterr().err == "ftm-test: no such setting\n"
    assert _run("no") == EXIT_REFUSED
    assert capsys.readouterr().err == "ftm-test: refused (code): not yours\n"
    assert _run("stop") == EXIT_INTERRUPTED


def test_no_command_prints_the_help_and_a_command_keeps_its_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run() == EXIT_CONFIG
    assert "Start here:  ftm-test ok" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        _run("ok", "--help")
    help_text = capsys.readouterr().out
    assert "One line.\n\nexample:\n  ftm-test ok --data-dir d\n" in help_text
    assert "--data-dir DIR  where things are (default: $FTM_TEST_DIR or ./ftm-test)" in help_text


def test_the_data_directory_is_the_option_then_the_variable_then_the_default() -> None:
    env = {"FTM_TEST_DIR": "/from/env"}
    assert resolve_data_dir(Path("/given"), env, "FTM_TEST_DIR", "ftm-test") == Path("/given")
    assert resolve_data_dir(None, env, "FTM_TEST_DIR", "ftm-test") == Path("/from/env")
    assert resolve_data_dir(None, {"FTM_TEST_DIR": ""}, "FTM_TEST_DIR", "ftm-test") == Path("ftm-test")
