"""How many bytes must go to bring usage back under target, and which candidates cover them."""

from __future__ import annotations

from collections.abc import Iterable

from oomguard.monitor.decision.candidate import Candidate


def bytes_on_their_way_out(candidates: Iterable[Candidate]) -> int:
    """Memory of candidates already told to stop: it will be freed without another victim."""
    return sum(max(c.memory_bytes, 0) for c in candidates if c.dying)


def amount_to_free(usage: int, target: int, buffer: int, dying_bytes: int = 0) -> int:
    """``usage - target + buffer`` minus what dying candidates will free, never negative.

    The buffer makes the guard land a little under the target instead of on it, so the
    next allocation does not immediately trigger another round.
    """
    if buffer < 0:
        raise ValueError(f"buffer must not be negative, got {buffer}")
    if dying_bytes < 0:
        raise ValueError(f"dying_bytes must not be negative, got {dying_bytes}")
    return max(0, usage - target + buffer - dying_bytes)


def first_covering(ordered: Iterable[Candidate], amount: int) -> tuple[list[Candidate], int]:
    """As few candidates as cover ``amount``, taken in the given order (all of them when they
    do not), and the bytes they hold."""
    victims: list[Candidate] = []
    covered = 0
    for c in ordered:
        if covered >= amount:
            break
        victims.append(c)
        covered += c.memory_bytes
    return victims, covered
