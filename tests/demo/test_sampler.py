"""The sampler reads memory.current from a plain file and skips what it cannot read."""

from __future__ import annotations

from pathlib import Path

from demo.sampler import Sampler


def test_sample_reads_and_skips(tmp_path: Path) -> None:
    sampler = Sampler(tmp_path)
    sampler.sample()  # no file yet
    (tmp_path / "memory.current").write_text("4096\n")
    sampler.sample()
    (tmp_path / "memory.current").write_text("")  # a read mid-removal
    sampler.sample()
    assert [value for _, value in sampler.samples] == [4096]


def test_thread_takes_a_first_sample_even_when_stopped_at_once(tmp_path: Path) -> None:
    (tmp_path / "memory.current").write_text("1\n")
    sampler = Sampler(tmp_path, interval=60.0)
    sampler.start()
    assert [value for _, value in sampler.stop()] == [1]
