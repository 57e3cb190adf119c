"""Reproducible train / validation question splits.

* Real PersonaMem uses the CoMAM paper's sizes (train / validation):
  32k 313 / 100, 128k 1,744 / 200, 1M 1,830 / 200 (:data:`PAPER_SIZES`).
* Every other dataset (synthetic, LoCoMo, …) defaults to 80 % / 20 % of its
  questions (validation = ``round(0.2 · n)``, train = the rest).
* ``sizes=(n_train, n_validation)`` overrides both.

The questions are shuffled with ``numpy.random.default_rng(seed).permutation``
over the dataset's question order; train is the first ``n_train`` of the
permutation and validation the next ``n_validation``, so the two are always
disjoint and the same seed always gives the same split. Ids are returned in
dataset order.

Grouping: by default questions are split (``by="question"``), as in the
paper — a training question and a validation question may share a history,
so a memory policy sees the same conversations in both splits but is scored
on different questions about them (PersonaMem has only 20 personas; splitting
its 37 32k contexts would leave very few validation histories). Pass
``by="history"`` to keep every history on one side (no shared conversations;
validation takes whole histories in shuffled order until it holds at least
``validation_fraction`` of the questions; ``sizes`` cannot be combined with it).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .schema import Dataset

SPLITS = ("train", "validation", "all")

#: CoMAM paper split sizes (train, validation) per PersonaMem size.
PAPER_SIZES: dict[str, tuple[int, int]] = {
    "32k": (313, 100),
    "128k": (1744, 200),
    "1m": (1830, 200),
}


def default_sizes(dataset: Dataset, validation_fraction: float = 0.2) -> tuple[int, int]:
    """(n_train, n_validation) used when ``sizes`` is not given."""
    m = re.fullmatch(r"personamem-(32k|128k|1m)", dataset.name.lower())
    if m:
        return PAPER_SIZES[m.group(1)]
    n = len(dataset.questions)
    n_val = int(round(validation_fraction * n))
    return n - n_val, n_val


def split_question_ids(dataset: Dataset, split: str, sizes: Sequence[int] | None = None, seed: int = 0, *,
                       by: str = "question", validation_fraction: float = 0.2) -> list[str]:
    """Question ids of ``split`` (``"train"``, ``"validation"`` or ``"all"``), in dataset order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    ids = [q.question_id for q in dataset.questions]
    if split == "all":
        return ids
    rng = np.random.default_rng(seed)
    if by == "question":
        n_train, n_val = (int(sizes[0]), int(sizes[1])) if sizes is not None else default_sizes(
            dataset, validation_fraction)
        if n_train < 0 or n_val < 0 or n_train + n_val > len(ids):
            raise ValueError(f"dataset {dataset.name!r} has {len(ids)} questions; cannot draw "
                             f"{n_train} train + {n_val} validation")
        perm = rng.permutation(len(ids))
        chosen = perm[:n_train] if split == "train" else perm[n_train:n_train + n_val]
    elif by == "history":
        if sizes is not None:
            raise ValueError("sizes cannot be combined with by='history'; use validation_fraction")
        hist_ids = sorted({q.history_id for q in dataset.questions})
        order = [hist_ids[i] for i in rng.permutation(len(hist_ids))]
        per_hist: dict[str, int] = {}
        for q in dataset.questions:
            per_hist[q.history_id] = per_hist.get(q.history_id, 0) + 1
        target = validation_fraction * len(ids)
        val_hist: set[str] = set()
        count = 0
        for h in order:
            if count >= target or len(val_hist) == len(order) - 1:
                break  # keep at least one history for training
            val_hist.add(h)
            count += per_hist[h]
        chosen = [i for i, q in enumerate(dataset.questions) if (q.history_id in val_hist) == (split == "validation")]
    else:
        raise ValueError(f"by must be 'question' or 'history', not {by!r}")
    return [ids[i] for i in sorted(int(i) for i in chosen)]
