"""Structured logging for the node: JSON lines to a file, a short human form to stderr.

Log lines carry ids and numbers only. As a second line of defence, exceptions are rendered as their type and
stack frames, without their message, unless they are our own `FtmError` (whose messages are written never to
quote content): a third-party library's message could echo the bytes it failed on.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from ftm.node.errors import FtmError

# Libraries whose debug output includes the values they handle: aiosqlite logs every SQL parameter, and the LLM
# SDKs log whole request bodies (conversation content). They never log below WARNING, whatever the node's level.
_QUIET_LIBRARIES = ("aiosqlite", "anthropic", "openai", "httpx2", "httpx")

# Attributes every LogRecord has; anything else on a record came from `extra=` and is emitted as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def safe_exception_text(exc_info: tuple[type[BaseException], BaseException, TracebackType | None]) -> str:
    kind, exc, tb = exc_info
    frames = "".join(traceback.format_tb(tb))
    if isinstance(exc, FtmError):
        return f"{frames}{kind.__name__}: {exc.message}"
    return f"{frames}{kind.__module__}.{kind.__qualname__} (message withheld)"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = safe_exception_text(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        if fields:
            line += f"  {fields}"
        if record.exc_info and record.exc_info[1] is not None:
            line += "\n" + safe_exception_text(record.exc_info)
        return line


def configure_logging(level: str, file: Path | None, *, console: bool = True) -> None:
    """Route the `ftm` loggers (and aiohttp's) to the log file and stderr; idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ftm", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        file_handler = logging.FileHandler(file, encoding="utf-8")
        file_handler.setFormatter(JsonFormatter())
        handlers.append(file_handler)
    if console:
        console_handler = logging.StreamHandler(sys.stderr)
        console_handler.setFormatter(ConsoleFormatter())
        handlers.append(console_handler)
    for handler in handlers:
        handler._ftm = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    quiet_chatty_libraries()


def quiet_chatty_libraries() -> None:
    """Pin the loggers of libraries that would log content at WARNING; idempotent, and safe to call from any
    component that brings such a library in (so it holds even where `configure_logging` never ran)."""
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
