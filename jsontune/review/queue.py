"""The review queue's order and its audit sample. Pure: no I/O.

The queue is `metrics.review_queue`'s (the rule predict's OUT.review.jsonl and eval use): rows without a
confidence (no JSON, or JSON read only after repair) first, then by their lowest field confidence, lowest first.
A row the queue leaves out would be accepted without a look; to measure how often that is right on the data
at hand, `audit_share` of those rows (at least one, when there are any and the share is above 0) are drawn at
random and mixed into the queue after its first row, at random places, unmarked: a reviewer treats them like
any other row, so their answers measure the precision of what the threshold accepts (`metrics.audit_precision`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from jsontune.metrics import review_queue


@dataclass(frozen=True)
class Plan:
    """The queue (positions of rows, in review order, audit rows mixed in) and which of them are audit rows."""

    order: list[int]
    audit: frozenset[int]


def plan(
    lowest: list[float | None],
    below: float | None,
    share: float | None,
    audit_share: float,
    seed: int,
) -> Plan:
    """The queue for rows whose lowest confidences are `lowest` (None: no confidence), by `below` and/or `share`
    as `metrics.review_queue` takes them, with `audit_share` of the rows it leaves out mixed in.

    With neither `below` nor `share` every row is in the queue, least confident first, and there is nothing to
    audit. The same arguments give the same plan (`seed` draws the sample and its places)."""
    if below is None and share is None:
        return Plan(review_queue(lowest, share=1.0), frozenset())
    base = review_queue(lowest, below, share)
    queued = set(base)
    rest = [i for i in range(len(lowest)) if i not in queued]
    rng = random.Random(seed)
    audit = sorted(rng.sample(rest, min(len(rest), math.ceil(audit_share * len(rest))))) if audit_share else []
    rng.shuffle(audit)
    size = len(base) + len(audit)
    # The first place stays the least confident row's; the audit rows take random places among the others.
    places = set(rng.sample(range(1 if base else 0, size), len(audit)))
    given, drawn = iter(base), iter(audit)
    return Plan([next(drawn) if place in places else next(given) for place in range(size)], frozenset(audit))
