"""Turning uploaded bytes into text and JSON values, with errors that say where the bytes went wrong.

Every importer that reads JSON (a whole document, a JSONL line, a PNG text chunk, a zip member) goes through here so
the rules are the same everywhere: strict UTF-8 (an optional byte-order mark is allowed), standard JSON only (no
`NaN`/`Infinity`, which Python would otherwise accept), and messages that name a line, column or byte offset but
never quote what was found there.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from ftm.node.errors import MalformedInput

_BOM = b"\xef\xbb\xbf"


def decode_utf8(data: bytes, what: str) -> str:
    """Decode `data` as strict UTF-8; `what` names the thing being read ("the upload", "line 3")."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput(
            f"{what} is not valid UTF-8 (first bad byte at offset {exc.start})", code="invalid_utf8"
        ) from None


def parse_json(text: str, what: str, *, code: str = "malformed_json") -> Any:
    """Parse one JSON document; `code` lets JSONL readers report their own error code."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        # exc.msg is a fixed phrase from the parser ("Expecting value"); the document itself is never quoted.
        raise MalformedInput(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", code=code
        ) from None
    except RecursionError:
        raise MalformedInput(f"{what} is not usable JSON: nested too deeply", code=code) from None
    except ValueError:
        # Python refuses integers with thousands of digits (and our own NaN refusal lands here too).
        raise MalformedInput(f"{what} is not usable JSON: a number is out of range", code=code) from None


def parse_json_bytes(data: bytes, what: str) -> Any:
    return parse_json(decode_utf8(data, what), what)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        # "1e999" parses to infinity, which is no more JSON than the literal Infinity is.
        raise ValueError("number out of range")
    return value


def _refuse_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON; accepting them would let non-standard floats into preserved fields.
    raise ValueError("non-standard JSON constant")
