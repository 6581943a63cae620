"""What `ftm-node restore` prints: the survey of the old host's residents (a line, or JSON), progress lines of a
restore, times. Part of `ftm.node.restorecli`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ftm.federation.identity import derive_id
from ftm.node.keeperclient import KeeperAddress
from ftm.node.restorefetch import Survey
from ftm.node.restoreoutcome import Step

MiB = 1024 * 1024


def survey_line(found: Survey, old_host: bytes, keepers: Sequence[KeeperAddress]) -> str:
    down = f", {len(found.unreachable)} did not answer" if found.unreachable else ""
    return (
        f"Old host {derive_id('node', old_host)}: {len(found.residents)} residents held by the {len(keepers)} "
        f"keepers asked{down}."
    )


def survey_json(found: Survey, old_host: bytes, keepers: Sequence[KeeperAddress]) -> dict[str, Any]:
    return {
        "old_host": old_host.hex(),
        "old_host_id": derive_id("node", old_host),
        "keepers": [{"url": k.url, "key": k.key.hex()} for k in keepers],
        "unreachable": found.unreachable,
        "residents": {
            rid: [
                {"epoch": c.epoch, "length": c.length, "root": c.root.hex(), "holders": len(c.holders)} for c in copies
            ]
            for rid, copies in found.residents.items()
        },
    }


class Printer:
    """Progress lines: `[n/m] resident: what happens`, the download every 10 % (none with --json)."""

    def __init__(self, *, quiet: bool) -> None:
        self._quiet = quiet
        self._tenths: dict[str, int] = {}

    def __call__(self, line: str) -> None:
        if not self._quiet:
            print(line, flush=True)

    def step(self, step: Step) -> None:
        head = f"[{step.index}/{step.total}] {step.resident_id}"
        if step.stage == "replica":
            tenth = 10 * step.done // max(step.size, 1)
            if self._tenths.get(step.resident_id) == tenth:
                return
            self._tenths[step.resident_id] = tenth
            self(f"{head}: replica {step.done / MiB:.1f} of {step.size / MiB:.1f} MiB from {step.detail}")
            return
        self(f"{head}: {step.stage}: {step.detail}")


def when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
