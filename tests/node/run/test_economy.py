"""Token economics: daily credit, catch-up credit after downtime, the bank cap, the minimum run."""

from __future__ import annotations

from ftm.config.settings import RuntimeSettings
from ftm.node.run.economy import can_run, credited_balance

SETTINGS = RuntimeSettings(daily_tokens=10_000, bank_cap=100_000, min_run_tokens=100)


def test_first_credit_and_once_per_day() -> None:
    assert credited_balance(0, None, "2027-01-01", SETTINGS) == 10_000
    assert credited_balance(10_000, "2027-01-01", "2027-01-01", SETTINGS) == 10_000  # same day: no second credit
    assert credited_balance(3_000, "2027-01-01", "2027-01-02", SETTINGS) == 13_000


def test_missed_days_are_credited_up_to_the_cap() -> None:
    assert credited_balance(0, "2027-01-01", "2027-01-04", SETTINGS) == 30_000
    assert credited_balance(95_000, "2027-01-01", "2027-01-02", SETTINGS) == 100_000
    assert credited_balance(0, "2026-01-01", "2027-01-01", SETTINGS) == 100_000


def test_a_balance_above_a_lowered_cap_is_not_taken_away() -> None:
    lowered = RuntimeSettings(daily_tokens=10_000, bank_cap=50_000)
    assert credited_balance(80_000, "2027-01-01", "2027-01-02", lowered) == 80_000


def test_minimum_run() -> None:
    assert can_run(100, SETTINGS) and not can_run(99, SETTINGS)
