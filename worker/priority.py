"""Priority order between queues, as pure functions.

``strict``: the listed order, always (a steady stream of ``high`` jobs starves ``low``). ``weighted``: a
weighted random order drawn for every dequeue (Sidekiq's weighted queues), so the first NON-EMPTY queue is
``q`` with probability ``weight(q) / sum of the weights of the non-empty queues`` and no queue starves.
Aging (``JOBFLEET_PRIORITY_AGING``) is applied after this order is drawn: inside the dequeue script in fork
mode, by :func:`aged_first` on the claim order in pool mode.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence


def weighted_order(queues: Sequence[str], weights: Mapping[str, float], rng: random.Random) -> list[str]:
    """A random permutation drawn by weight without replacement (unlisted queues weigh 1).

    Efraimidis-Spirakis keys ``u ** (1 / w)``, highest first: restricted to any subset of the queues, the
    first element is ``q`` with probability ``w(q) / sum(w)`` over that subset.
    """
    keyed = [(rng.random() ** (1.0 / weights.get(q, 1.0)), q) for q in queues]
    return [q for _, q in sorted(keyed, key=lambda kv: kv[0], reverse=True)]


def queue_order(mode: str, queues: Sequence[str], weights: Mapping[str, float], rng: random.Random) -> list[str]:
    """The order in which one dequeue tries ``queues`` under priority ``mode`` (``strict``/``weighted``)."""
    if mode == "weighted" and len(queues) > 1:
        return weighted_order(queues, weights, rng)
    return list(queues)


def aged_first(order: Sequence[str], ages: Mapping[str, float], aging_s: float) -> list[str]:
    """``order`` with the queue whose next job waited longest beyond ``aging_s`` moved to the front (pure).

    ``ages``: seconds the next job of each queue has waited (a queue without one is absent). Without a queue
    past the limit, or with ``aging_s`` 0 (off), the order is unchanged.
    """
    late = [(ages[q], q) for q in order if q in ages and aging_s > 0 and ages[q] > aging_s]
    if not late:
        return list(order)
    oldest = max(late)[1]
    return [oldest, *(q for q in order if q != oldest)]
