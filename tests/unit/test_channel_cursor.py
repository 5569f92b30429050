"""The listener's cursor: ids become visible in commit order, not in id order."""

from __future__ import annotations

from typing import NamedTuple

from actions_server.realtime.cursor import MAX_AWAITED, Cursor


class Row(NamedTuple):
    id: int


def ids(rows: list[Row]) -> list[int]:
    return [r.id for r in rows]


def test_new_rows_in_order() -> None:
    cursor = Cursor(high=10)
    assert ids(cursor.take([Row(11), Row(12)], xmin=100, xmax=101, complete=True)) == [11, 12]
    assert (cursor.high, cursor.awaited) == (12, {})
    assert cursor.take([], xmin=100, xmax=101, complete=True) == []


def test_an_id_committed_late_is_still_delivered_once() -> None:
    cursor = Cursor(high=10)
    # 11's transaction (xid 100) is still running when 12 becomes visible.
    assert ids(cursor.take([Row(12)], xmin=100, xmax=102, complete=True)) == [12]
    assert cursor.awaited == {11: 102}
    # Still running: xmin has not passed the snapshot that missed 11.
    assert cursor.take([], xmin=100, xmax=103, complete=True) == []
    assert 11 in cursor.awaited
    # It commits: the next read finds it.
    assert ids(cursor.take([Row(11), Row(13)], xmin=103, xmax=104, complete=True)) == [11, 13]
    assert cursor.awaited == {}
    assert cursor.take([Row(11)], xmin=104, xmax=105, complete=True) == []


def test_an_id_rolled_back_is_given_up_once_its_writer_has_ended() -> None:
    cursor = Cursor(high=0)
    cursor.take([Row(1), Row(3)], xmin=50, xmax=60, complete=True)
    assert cursor.awaited == {2: 60}
    # A long transaction elsewhere (xmin 55) keeps 2 awaited, and holds nothing back.
    assert ids(cursor.take([Row(4)], xmin=55, xmax=70, complete=True)) == [4]
    assert cursor.awaited == {2: 60}
    # Every transaction that could have written 2 has ended, and it is not there.
    assert cursor.take([], xmin=60, xmax=70, complete=True) == []
    assert cursor.awaited == {}


def test_a_read_cut_short_decides_nothing_about_awaited_ids() -> None:
    cursor = Cursor(high=0)
    cursor.take([Row(2)], xmin=10, xmax=11, complete=True)
    cursor.take([Row(3)], xmin=20, xmax=21, complete=False)
    assert 1 in cursor.awaited


def test_the_awaited_ids_are_bounded() -> None:
    cursor = Cursor(high=0)
    cursor.take([Row(MAX_AWAITED * 3)], xmin=1, xmax=2, complete=True)
    assert len(cursor.awaited) == MAX_AWAITED
    assert min(cursor.awaited) == MAX_AWAITED * 2
