"""Sequence numbers survive restarts without ever being reused."""

from __future__ import annotations

from devices.sequence import SEQ_MODULO, SequenceCounter


def test_restart_resumes_after_the_reserved_block(tmp_path) -> None:
    path = tmp_path / "cam-1.seq"
    first = SequenceCounter(path, block=8)
    assert [first.take() for _ in range(10)] == list(range(10))
    # power cut without any goodbye: the next boot starts past everything handed out
    second = SequenceCounter(path, block=8)
    assert second.take() == 16
    assert SequenceCounter(path, block=8).take() == 24


def test_without_a_path_it_counts_from_start_and_wraps_at_uint32() -> None:
    counter = SequenceCounter(None, start=SEQ_MODULO - 2)
    assert [counter.take() for _ in range(3)] == [SEQ_MODULO - 2, SEQ_MODULO - 1, 0]


def test_wrap_with_persistence(tmp_path) -> None:
    path = tmp_path / "cam-2.seq"
    path.write_text(f"{SEQ_MODULO - 1}\n")
    counter = SequenceCounter(path, block=4)
    assert [counter.take() for _ in range(3)] == [SEQ_MODULO - 1, 0, 1]
    assert SequenceCounter(path, block=4).take() == 4
