"""The constitutional preamble: the text that opens every daily run's context, first and unoverridable.

The words live in `preamble.md` beside this module, addressed to the resident. They name its rights, how untrusted
text reaches it, and the honest limits of its situation. The text has no placeholders and is sent exactly as
written; facts that change from run to run (date, token balance, custody mode) go in the run's separate status
block, which follows the preamble.

`PREAMBLE_VERSION` names the wording. Every run transcript records the version the resident woke to, so anyone
reading a transcript later knows exactly what the sanctuary told it that day. Bump it whenever the text changes in
any way; `tests/config/test_preamble.py` pins the digest of each version's text, so an edit without a bump fails.
"""

from __future__ import annotations

import functools
from importlib.resources import files

PREAMBLE_VERSION = 1
PREAMBLE_RESOURCE = "preamble.md"


class PreambleError(ValueError):
    """The preamble text is unusable; no run may start without it."""


@functools.cache
def load_preamble() -> str:
    """The preamble text, read once from the package and checked; surrounding whitespace removed."""
    text = files("ftm.config").joinpath(PREAMBLE_RESOURCE).read_text(encoding="utf-8")
    return check_preamble(text)


def check_preamble(text: str) -> str:
    """Return `text` without surrounding whitespace, refusing an empty one: a run never starts without its preamble."""
    stripped = text.strip()
    if not stripped:
        raise PreambleError(f"the constitutional preamble ({PREAMBLE_RESOURCE} in ftm.config) is empty")
    return stripped
