"""Trivial baselines for sequence tasks, scored on the same split as the model.

`lead_words`: the first N words of each source, N the median target length in words on the training split (for
headlines or summaries, "the first sentence" baseline that learned summarisers must beat).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def lead_length(targets: Sequence[str]) -> int:
    """The median number of words of `targets` (at least 1)."""
    return max(1, round(statistics.median(len(t.split()) for t in targets))) if targets else 1


def lead_words(sources: Sequence[str], n: int) -> list[str]:
    """The first `n` words of each source."""
    return [" ".join(str(s).split()[:n]) for s in sources]
