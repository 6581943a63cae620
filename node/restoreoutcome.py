"""What a restore tells its caller (`ftm.node.restore`): the progress of each resident (`Step`, through a
`Reporter`), what became of it (`Outcome`), and why an epoch could not be restored (`Refused`, with the keepers'
own code when they agree: `refusal`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ftm.node.restorefetch import Gathered


@dataclass(frozen=True, slots=True)
class Step:
    """Progress of a restore, for the operator: resident `index` of `total`, what it is doing, bytes so far."""

    index: int
    total: int
    resident_id: str
    stage: str  # shares | replica | verified | installed | skipped | failed
    detail: str = ""
    done: int = 0
    size: int = 0


@dataclass
class Outcome:
    """What became of one resident: `restored`, `already_here`, or `refused` (the keepers would not release,
    or nothing they sent passed its checks), with a stable `code` and a sentence."""

    resident_id: str
    state: str
    code: str = ""
    message: str = ""
    epoch: int | None = None  # the old host's epoch it was restored from
    new_epoch: int | None = None  # its epoch here
    vault_bytes: int = 0
    replica_from: str = ""
    rejected_shares: list[str] = field(default_factory=list)  # "keeper URL x=N: why"
    bad_replicas: list[str] = field(default_factory=list)  # keeper URLs whose copy failed the root
    posts: int = 0  # its published posts, back from the federation's object store


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Reporter:
    """Steps of one resident, numbered for the operator."""

    on_step: Callable[[Step], None]
    index: int
    total: int
    resident_id: str

    def __call__(self, *, stage: str, detail: str = "", done: int = 0, size: int = 0) -> None:
        self.on_step(Step(self.index, self.total, self.resident_id, stage, detail, done, size))


def refusal(gathered: Gathered, threshold: int) -> Refused:
    """Why too few shares came: the keepers' own code when they agree, else a summary."""
    codes = sorted(set(gathered.refused.values()))
    verified = len(gathered.released) - len(gathered.rejected)
    summary = ", ".join(f"{url}: {code}" for url, code in sorted(gathered.refused.items()))
    code = codes[0] if len(codes) == 1 else "not_enough_shares"
    message = f"{max(verified, 0)} of the {threshold} shares needed were released and verified"
    return Refused(code, f"{message} ({summary})" if summary else message)
