"""What every `ftm-*` command line shares (`ftm-node`, `ftm-keeper`): exit codes, the top-level parser, the
`--data-dir` option and where a data directory is looked for, and `run_command`, which turns a parsed command's
errors into exit codes and one line on stderr.

Exit codes: `EXIT_OK` 0 success; `EXIT_REFUSED` 1 refused (the daemon, or a peer, said no); `EXIT_CONFIG` 2 usage
or configuration errors (an unknown setting, an unreadable key file, a newer database, no data directory);
`EXIT_INTERRUPTED` 130 Ctrl+C, as a shell reports it. Each CLI names its own error classes (they live in higher
layers: this module sits at the bottom, so both daemons can use it) and sets up its own logging.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:  # argparse has no public name for what `add_subparsers` returns, and it is generic only in stubs
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def top_parser(prog: str, description: str) -> tuple[argparse.ArgumentParser, Commands]:
    """The program's parser, its description printed as written (it has a "Start here" block), and the group its
    commands are added to."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    return parser, commands


def data_dir_option(what: str, variable: str, default: str) -> argparse.ArgumentParser:
    """A parent parser with `--data-dir DIR`, for every command that opens a data directory; `what` says what the
    directory holds, `variable` and `default` where it is looked for without the option."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"{what} (default: ${variable} or ./{default})",
    )
    return common


def resolve_data_dir(given: Path | None, env: Mapping[str, str], variable: str, default: str) -> Path:
    """`--data-dir` if given, else the environment variable if set and not empty, else `./default`."""
    if given is not None:
        return given
    return Path(env.get(variable) or default)


def add_command(
    commands: Commands,
    name: str,
    run: Command,
    *,
    help: str,
    description: str,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """A command whose `--help` shows `description` as written (dedented: paragraphs and examples keep their
    lines), listed with `help` in the program's `--help`."""
    command: argparse.ArgumentParser = commands.add_parser(
        name,
        parents=list(parents),
        help=help,
        description=textwrap.dedent(description).strip("\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.set_defaults(command_func=run)
    return command


def usage(parser: argparse.ArgumentParser) -> int:
    """A command group run without one of its commands: its help, and the usage error's exit code."""
    parser.print_help()
    return EXIT_CONFIG


def run_command(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    *,
    configuration_errors: tuple[type[Exception], ...],
    refusals: tuple[type[Exception], ...] = (),
    describe_refusal: Callable[[Exception], str] = str,
) -> int:
    """Parse `argv` and run the chosen command; its exit code. No command: the help, and `EXIT_CONFIG`. A
    configuration error is reported as `prog: message` with `EXIT_CONFIG`; a refusal as `prog: refused ...` with
    `EXIT_REFUSED`; anything else propagates (a bug deserves its traceback)."""
    args = parser.parse_args(argv)
    run: Command | None = getattr(args, "command_func", None)
    if run is None:
        return usage(parser)
    try:
        return run(args)
    except configuration_errors as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except refusals as exc:
        print(f"{parser.prog}: refused {describe_refusal(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
