"""Small pieces of wording the tools share, so every result states times, names and excerpts the same way."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

# Characters that would let a one-line name hide text or reorder it: controls, bidi overrides, zero-width marks,
# private use, unassigned code points and line or paragraph separators.
_REFUSED_IN_NAMES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def iso_time(timestamp: int | None) -> str:
    """Unix seconds as an ISO 8601 UTC time, or "unknown time"."""
    if timestamp is None:
        return "unknown time"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def one_line(text: str) -> str:
    """A name or title on one line: invisible and control characters removed, runs of whitespace collapsed."""
    kept = "".join(c for c in unicodedata.normalize("NFC", text) if unicodedata.category(c) not in _REFUSED_IN_NAMES)
    return " ".join(kept.split())


def excerpt(text: str, at: int = 0, width: int = 300) -> str:
    """About `width` characters of `text` around index `at`, on one line, with ellipses where it was cut."""
    start = max(0, min(at - width // 3, len(text) - width))
    end = min(len(text), start + width)
    piece = " ".join(text[start:end].split())
    return ("…" if start > 0 else "") + piece + ("…" if end < len(text) else "")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"
