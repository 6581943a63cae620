"""Announced ids: one announcer fetched per id after the grace, the next only if that fails, bounded."""

from __future__ import annotations

from ftm.federation.wants import WantList

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32
X, Y = b"\x01" * 32, b"\x02" * 32


def test_an_id_is_fetched_once_from_its_first_announcer_after_the_grace() -> None:
    wants = WantList(grace=0.5, retry=1.0)
    wants.add(X, A, now=10.0)
    wants.add(X, B, now=10.1)
    wants.add(Y, B, now=10.2)
    assert wants.take_due(10.4) == {}
    assert wants.take_due(10.6) == {A: [X]}
    assert wants.take_due(10.8) == {B: [Y]}
    assert wants.take_due(20.0) == {}  # being fetched: not due again
    wants.failed([X], now=11.0)
    assert wants.take_due(11.5) == {} and wants.take_due(12.0) == {B: [X]}
    wants.failed([X], now=12.0)  # every announcer tried
    assert X not in wants and wants.dropped == 1


def test_arrival_resolves_and_the_list_is_bounded() -> None:
    wants = WantList(grace=0.0, retry=1.0, max_ids=1)
    wants.add(X, A, now=0.0)
    wants.add(Y, A, now=0.0)
    assert len(wants) == 1 and wants.dropped == 1
    wants.resolve([X])
    assert len(wants) == 0 and wants.next_due() is None
    wants.add(Y, C, now=1.0)
    assert wants.announcers(Y) == [C] and wants.next_due() == 1.0
