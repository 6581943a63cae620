"""Run an `ftm-node` or `ftm-keeper` command line with one function replaced by a SIGKILL of the process: `kill -9`
at a named point, for the crash tests in this folder (`tests.integration.processes.CrashPoint` builds the command).

    crasher.py TARGET WHEN NTH MAIN -- ARGS...

TARGET is `module:Qualified.name` (a function, or a method on its class); WHEN is `before` (the process dies as the
NTH call starts, before the real function runs) or `after` (the NTH call runs the real function, and the process
dies as it returns); MAIN is the command line's `module:function`, called with ARGS. Async targets are wrapped in
async wrappers. It is run as a script, by path, and imports only `ftm` and the standard library.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn


def die() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL cannot be caught")


def resolve(target: str) -> tuple[Any, str]:
    """The object holding the target, and the target's name in it."""
    module_name, _, qualname = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    if not hasattr(owner, name):
        raise SystemExit(f"no {name} in {owner!r}")
    return owner, name


def patch(target: str, when: str, nth: int) -> None:
    if when not in ("before", "after") or nth < 1:
        raise SystemExit(f"unknown crash point {when} {nth}")
    owner, name = resolve(target)
    real: Callable[..., Any] = getattr(owner, name)
    calls = 0

    def count() -> bool:
        nonlocal calls
        calls += 1
        return calls == nth

    if inspect.iscoroutinefunction(real):

        @functools.wraps(real)
        async def wrapper_async(*args: Any, **kwargs: Any) -> Any:
            last = count()
            if last and when == "before":
                die()
            answer = await real(*args, **kwargs)
            if last:
                die()
            return answer

        setattr(owner, name, wrapper_async)
    else:

        @functools.wraps(real)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            last = count()
            if last and when == "before":
                die()
            answer = real(*args, **kwargs)
            if last:
                die()
            return answer

        setattr(owner, name, wrapper)


def run(argv: list[str]) -> int:
    if len(argv) < 5 or argv[4] != "--":
        raise SystemExit(__doc__)
    target, when, nth, entry = argv[:4]
    patch(target, when, int(nth))
    main_owner, main_name = resolve(entry)
    return int(getattr(main_owner, main_name)(argv[5:]))


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
