"""The reward equations of the CoMAM MDP (docs/design.md §3, docs/design.md), in the paper's order.

====  =====================================================  =================================
eq.   reward                                                 function
====  =====================================================  =================================
9     extractor: ``α·c/|E| + (1−α)·c/(|M_f|+|E|−c)``          :func:`extractor_reward`
10    profiler: ``V(M_c, H)``, a frozen judge                 :func:`profiler_reward`
11    retriever: ``β·c/|E| + (1−β)·c/(|E'_q|+|E|−c)``         :func:`retriever_reward`
12    global: answer accuracy (option match / token F1)       :func:`answer_reward`
====  =====================================================  =================================

``c`` is the number of one-to-one matches between memory units and the gold evidence E_q
(:mod:`comam_env.matching` — units, matchers, greedy matching and their caches — re-exported
here). Evidence that is ``None`` or empty makes a coverage reward *undefined*: the functions
return ``None`` and never invent 0 or 1; an empty memory scores 0. The answer rule is
:mod:`comam_env.scoring` (:func:`comam_env.score_answer`), the one rule of the environment, the
evaluation harness and the leaderboard. Everything is deterministic: the same inputs give the
same reward, bit for bit, and usable outside the environment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from comam_env.config import check_real
from comam_env.matching import (  # noqa: F401  (re-exported: the machinery of eq. 9 and 11)
    EMBEDDING_TAU,
    TOKEN_RECALL_TAU,
    EmbeddingMatcher,
    Matcher,
    MatchResult,
    TokenRecallMatcher,
    _evidence_list,
    clear_caches,
    greedy_match,
    match_units,
    resolve_matcher,
    to_units,
)
from comam_env.scoring import (  # noqa: F401  (re-exported: eq. 12 lives in comam_env.scoring)
    ABSTENTION_PHRASES,
    AnswerParts,
    answer_reward,
    answer_text,
    extract_tag,
    is_abstention,
    is_option_correct,
    normalize_answer,
    option_sets,
    parse_option,
    score_answer,
    token_f1,
)

__all__ = [
    "ALPHA",
    "BETA",
    "CoverageParts",
    "coverage_reward",
    "extractor_reward",
    "profiler_reward",
    "retriever_reward",
    "answer_reward",
    "score_answer",
    # re-exported machinery
    "TOKEN_RECALL_TAU",
    "EMBEDDING_TAU",
    "clear_caches",
    "Matcher",
    "TokenRecallMatcher",
    "EmbeddingMatcher",
    "resolve_matcher",
    "MatchResult",
    "match_units",
    "greedy_match",
    "to_units",
    "ABSTENTION_PHRASES",
    "extract_tag",
    "option_sets",
    "parse_option",
    "is_option_correct",
    "normalize_answer",
    "token_f1",
    "is_abstention",
    "answer_text",
    "AnswerParts",
]

#: Extractor weight on recall (eq. 9).
ALPHA = 0.8
#: Retriever weight on recall (eq. 11); the rest goes to the Jaccard (precision) term.
BETA = 0.2


@dataclass(frozen=True)
class CoverageParts:
    """A coverage reward and its parts (what ``infos`` carry).

    Attributes:
        reward: ``weight·recall + (1−weight)·jaccard``, in [0, 1].
        recall: ``c/|E|``.
        jaccard: ``c/(|M|+|E|−c)``.
        weight: the recall weight (α or β).
        count: ``c``, the number of matched (unit, evidence) pairs.
        matched_evidence: indices of matched evidence items, ascending.
        matched_units: indices of matched units, ascending.
        n_units: ``|M|``.
        n_evidence: ``|E|``.
    """

    reward: float
    recall: float
    jaccard: float
    weight: float
    count: int
    matched_evidence: tuple[int, ...]
    matched_units: tuple[int, ...]
    n_units: int
    n_evidence: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["matched_evidence"] = list(self.matched_evidence)
        d["matched_units"] = list(self.matched_units)
        return d


def coverage_reward(
    memory: str | Sequence[str] | None,
    evidence: Sequence[str] | None,
    weight: float,
    matcher: Any = "token-recall",
    tau: float | None = None,
) -> CoverageParts | None:
    """Information-coverage reward ``w·c/|E| + (1−w)·c/(|M|+|E|−c)`` (eq. 9/11).

    Returns ``None`` when ``evidence`` is ``None`` or empty (the reward is
    undefined); an empty memory gives reward 0 with ``c = 0``.
    """
    if evidence is None:
        return None
    evidence = _evidence_list(evidence)
    if not evidence:
        return None
    w = check_real("weight", weight, 0.0, 1.0)  # alpha=True or nan used to pass as a number
    if tau is not None:  # similarities are <= 1, and tau <= 0 would match everything with everything
        check_real("tau", tau, 0.0, 1.0, low_open=True)
    result = match_units(memory, evidence, matcher=matcher, tau=tau)
    c, n_m, n_e = result.count, result.n_units, result.n_evidence
    recall = c / n_e
    jaccard = c / (n_m + n_e - c)  # n_e >= 1, so the denominator is >= 1
    return CoverageParts(
        reward=w * recall + (1.0 - w) * jaccard,
        recall=recall,
        jaccard=jaccard,
        weight=w,
        count=c,
        matched_evidence=result.matched_evidence,
        matched_units=result.matched_units,
        n_units=n_m,
        n_evidence=n_e,
    )


def extractor_reward(
    memory: str | Sequence[str] | None,
    evidence: Sequence[str] | None,
    alpha: float = ALPHA,
    matcher: Any = "token-recall",
    tau: float | None = None,
) -> CoverageParts | None:
    """Eq. 9, information coverage of the fine-grained memory:
    ``r_ext = α·c/|E| + (1−α)·c/(|M_f|+|E|−c)``, α = 0.8 (favours recall)."""
    return coverage_reward(memory, evidence, alpha, matcher=matcher, tau=tau)


def profiler_reward(profile: str, judge: Any, *, history: Any = None,
                    gold_profile: Sequence[str] | None = None) -> Any:
    """Eq. 10, the profile's quality: ``r_prof = V(M_c, H) ∈ [0, 1]``, scored by a frozen judge.

    ``judge`` is any object of :mod:`comam_env.judges` (``get_judge(name)``): the gold-profile
    judge compares M_c with what the history the profiler saw supports; the embedding and LLM
    judges read ``history``. Returns the judge's result (``.score``, ``.parts``).
    """
    return judge.score(profile, history=history, gold_profile=gold_profile)


def retriever_reward(
    retrieved: str | Sequence[str] | None,
    evidence: Sequence[str] | None,
    beta: float = BETA,
    matcher: Any = "token-recall",
    tau: float | None = None,
) -> CoverageParts | None:
    """Eq. 11, coverage of the retrieved memory E'_q:
    ``r_ret = β·c/|E| + (1−β)·c/(|E'_q|+|E|−c)``, β = 0.2 (favours precision)."""
    return coverage_reward(retrieved, evidence, beta, matcher=matcher, tau=tau)


# Eq. 12, the global (answer) reward: ``answer_reward(response, question)`` and
# ``score_answer(question, response)`` from comam_env.scoring (imported above).
