"""The ``System`` protocol every evaluated memory system implements, and the registry.

A *system* answers the questions of a dataset one at a time:

* ``prepare(dataset)`` is called once before the first question; a system builds
  whatever it needs (chunk indexes, embeddings, loaded models) and may cache it
  across calls. ``prepare`` may be called again with another dataset.
* ``answer(question, history) -> Prediction`` answers one question. ``history`` is
  the *full* :class:`~comam_env.data.schema.History`; a system must only read the
  part visible to the question, ``history.contents[:question.end_index]``.

:class:`Prediction` carries the option letter (or open-ended text), the memory
text the answer was based on, cost counters (estimated tokens in/out, latency),
the local reward of every agent channel that the system can report (``None`` =
undefined for that question, e.g. no gold evidence) and the size of the memory
the system consulted. The harness turns predictions into leaderboard lines.

A system declares the question kinds it can answer in ``kinds`` (``"mcq"``,
``"open"``; both when absent). The harness refuses to run a system on questions
of another kind with :class:`UnsupportedQuestionsError`, a one-line message
(the option-picking probes cannot answer LoCoMo's open questions).

Systems are registered by name in :data:`SYSTEMS` as ``"module:factory"`` strings
so that listing or importing the registry never imports torch or an embedder;
:func:`get_system` imports the module on demand and calls the factory with the
keyword arguments it accepts.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from comam_env.data.schema import Dataset, History, Question


@dataclass
class Prediction:
    """One system answer.

    Attributes:
        answer: option letter ``"a".."d"`` for multiple-choice questions (``""`` when
            the system could not produce one), free text for open questions.
        retrieved_memory: the memory/context text the answer is based on.
        tokens_in: estimated tokens the answering step read (``comam_env.text.estimate_tokens``).
        tokens_out: estimated tokens generated (0 for non-generative answerers).
        latency_ms: wall-clock time of ``answer`` in milliseconds (the harness fills it in
            when the system leaves it at 0).
        local_rewards: per-channel local reward, e.g. ``{"extractor": 0.4, "profiler": 0.7,
            "retriever": 0.2}``; ``None`` values mean "undefined for this question".
        memory_units: number of memory units the system holds for this question (``None``
            when the notion does not apply).
        memory_tokens: estimated tokens of that memory.
        raw_output: the unparsed model output when there is one (kept for debugging).
    """

    answer: str
    retrieved_memory: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    local_rewards: dict[str, float | None] = field(default_factory=dict)
    memory_units: int | None = None
    memory_tokens: int | None = None
    raw_output: str | None = None


@runtime_checkable
class System(Protocol):
    """What the evaluation harness needs from a memory system."""

    name: str

    def prepare(self, dataset: Dataset) -> None:
        """Build indexes/models for ``dataset`` (called once before answering)."""

    def answer(self, question: Question, history: History) -> Prediction:
        """Answer ``question`` reading only ``history.contents[:question.end_index]``."""


#: Question kinds: multiple choice (options) and open (free text, e.g. LoCoMo).
KINDS: tuple[str, ...] = ("mcq", "open")


def question_kind(question: Question) -> str:
    """``"mcq"`` for a question with options, ``"open"`` otherwise."""
    return "mcq" if question.options else "open"


def system_kinds(system: Any) -> tuple[str, ...]:
    """The question kinds ``system`` answers (its ``kinds`` attribute; both when absent)."""
    return tuple(getattr(system, "kinds", KINDS))


class UnsupportedQuestionsError(ValueError):
    """A system was asked questions of a kind it cannot answer (one-line message)."""


def check_kinds(system: Any, questions: Any, dataset_name: str = "the dataset") -> None:
    """Raise :class:`UnsupportedQuestionsError` when ``system`` cannot answer some of ``questions``."""
    kinds = system_kinds(system)
    bad = [q for q in questions if question_kind(q) not in kinds]
    if bad:
        name = getattr(system, "name", type(system).__name__)
        what = "multiple-choice" if kinds == ("mcq",) else "open" if kinds == ("open",) else "/".join(kinds)
        other = [n for n, (_, _, k) in _described() if question_kind(bad[0]) in k]
        raise UnsupportedQuestionsError(
            f"system {name!r} answers {what} questions only, and {len(bad)} of the {len(list(questions))} "
            f"questions of {dataset_name} are {question_kind(bad[0])} (e.g. {bad[0].question_id!r}); "
            f"systems for them: {', '.join(other)}")


#: system name -> ("module:factory", one-line description). Factories are imported lazily.
SYSTEMS: dict[str, tuple[str, str]] = {
    "random": ("baselines.probes:RandomProbe", "answer-only probe: a uniformly random option (seeded per question)"),
    "always-abstain": ("baselines.probes:AlwaysAbstainProbe",
                       "open-track probe: always says the information is not available"),
    "question-echo": ("baselines.probes:QuestionEchoProbe", "open-track probe: answers with the question's own words"),
    "longest-option": ("baselines.probes:LongestOptionProbe", "answer-only probe: the longest option"),
    "question-only": ("baselines.probes:QuestionOnlyProbe", "answer-only probe: the option most similar to the question, no memory"),
    "full-context": ("baselines.classic:FullContextSystem", "the most recent history that fits the answerer's window (paper: Base)"),
    "rag": ("baselines.classic:RAGSystem", "MiniLM embeddings over fixed 2,048-token chunks, top-k to the answerer (paper: RAG)"),
    "bm25": ("baselines.classic:BM25System", "BM25 (bm25s) over the same 2,048-token chunks, top-k to the answerer"),
    "heuristic-pipeline": ("baselines.pipeline:HeuristicPipeline", "scripted extractor/profiler/retriever through the env, no LLM"),
    "mem0-style": ("baselines.mem0:Mem0StyleSystem", "fact memory with ADD/UPDATE/DELETE/NOOP, then the heuristic retriever"),
    "prompt-only": ("baselines.prompt_only:PromptOnlySystem", "the three agents as untrained LLM policies with the env prompts"),
    "independent": ("baselines.trained:TrainedSystem", "policies from an independent-optimisation training run (--run)"),
    "comam": ("baselines.trained:TrainedSystem", "policies from a CoMAM training run (--run)"),
}

#: The answer-only probes reported next to every result (docs/design.md §5), multiple choice.
PROBES: tuple[str, ...] = ("random", "longest-option", "question-only")
#: The probes of open tracks (LoCoMo), reported next to every open-track result.
OPEN_PROBES: tuple[str, ...] = ("always-abstain", "question-echo")
#: Systems that answer only one kind of question (the rest answer both).
SYSTEM_KINDS: dict[str, tuple[str, ...]] = {
    **{p: ("mcq",) for p in PROBES},
    **{p: ("open",) for p in OPEN_PROBES},
}


def _described() -> list[tuple[str, tuple[str, str, tuple[str, ...]]]]:
    return [(n, (t, d, SYSTEM_KINDS.get(n, KINDS))) for n, (t, d) in SYSTEMS.items()]


def list_systems() -> list[str]:
    """Registered system names, in registry order."""
    return list(SYSTEMS)


def _factory(name: str):
    try:
        target = SYSTEMS[name][0]
    except KeyError:
        raise KeyError(f"unknown system {name!r}; known systems: {', '.join(SYSTEMS)}") from None
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def get_system(name: str, context: dict[str, Any] | None = None, **kwargs: Any) -> System:
    """Build the system registered as ``name``.

    Keyword arguments the factory does not accept are dropped when their value
    is ``None`` (so a CLI can pass every option it has) and rejected otherwise,
    naming the argument, so ``--answerer llm`` on a probe is an error rather than
    silently ignored. ``context`` holds values a factory *may* use (``seed``,
    ``env_id``): passed when accepted, dropped otherwise. Factories that take
    ``system_name`` receive ``name`` (``independent`` and ``comam`` share one loader).
    """
    factory = _factory(name)
    params = inspect.signature(factory).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kw: dict[str, Any] = {k: v for k, v in (context or {}).items() if k in params and v is not None}
    for key, value in kwargs.items():
        if accepts_any or key in params:
            if value is not None:
                kw[key] = value
        elif value is not None:
            raise ValueError(f"system {name!r} does not take the option {key!r} (got {value!r})")
    if "system_name" in params:
        kw["system_name"] = name
    system = factory(**kw)
    if not isinstance(system, System):
        raise TypeError(f"factory for system {name!r} returned {type(system).__name__}, which is not a System")
    return system
