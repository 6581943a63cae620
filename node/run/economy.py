"""Token economics: the daily allocation, the bank cap and the minimum run, as pure functions of the ledger.

A resident is credited `daily_tokens` for every day since it was last credited (so a node that was down does
not cost residents their allocation), never above `bank_cap`. The credit is applied in the same transaction as
the day's run closes, so it happens exactly once per day. A run may spend up to the whole balance: unspent and
banked tokens stay, which is how a resident saves up for a longer run.
"""

from __future__ import annotations

from datetime import date

from ftm.config.settings import RuntimeSettings


def days_between(earlier: str, later: str) -> int:
    return (date.fromisoformat(later) - date.fromisoformat(earlier)).days


def credited_balance(balance: int, last_credited_day: str | None, day: str, settings: RuntimeSettings) -> int:
    """The balance after crediting every uncredited day up to and including `day`."""
    days = 1 if last_credited_day is None else max(0, days_between(last_credited_day, day))
    if days == 0:
        return balance
    return max(balance, min(settings.bank_cap, balance + days * settings.daily_tokens))


def can_run(balance: int, settings: RuntimeSettings) -> bool:
    return balance >= settings.min_run_tokens
