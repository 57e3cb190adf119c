"""Immutable data types shared by every loader, the environment and the learners.

A benchmark is loaded into one :class:`Dataset`: histories (long multi-session
conversations) keyed by id, the questions asked on them, and gold user profiles
when the data has them. Everything is frozen so a dataset can be shared between
environments, processes and caches without defensive copies.

Histories are stored column-wise (one tuple of roles, one of contents, one of
session start offsets) rather than as one Python object per message: a 1M-token
PersonaMem history has tens of thousands of messages and is read far more often
by slices than message by message. :class:`Message` objects are built on demand.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterator, Mapping, Sequence

#: The seven normalised PersonaMem question types (docs/design.md §6).
QUESTION_TYPES: tuple[str, ...] = (
    "recall_user_shared_facts",
    "suggest_new_ideas",
    "acknowledge_latest_user_preferences",
    "track_full_preference_evolution",
    "revisit_reasons_behind_preference_updates",
    "provide_preference_aligned_recommendations",
    "generalize_to_new_scenarios",
)

#: Option letters for multiple-choice questions, in order.
OPTION_LETTERS: tuple[str, ...] = ("a", "b", "c", "d", "e", "f", "g", "h")

#: Message roles of a conversation (not the memory-system roles of :mod:`comam_env.roles`).
MESSAGE_ROLES: tuple[str, ...] = ("system", "user", "assistant")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a history.

    Attributes:
        role: ``"system"``, ``"user"`` or ``"assistant"``.
        content: the text, without the ``User:``/``Assistant:`` prefix PersonaMem stores.
        index: position in the history (the index evidence and ``end_index`` refer to).
        session: 0-based session number the message belongs to.
    """

    role: str
    content: str
    index: int
    session: int


@dataclass(frozen=True)
class History:
    """An ordered multi-session conversation, stored column-wise.

    Attributes:
        history_id: the shared-context id (PersonaMem) or sample id (LoCoMo).
        roles: role of every message.
        contents: text of every message (prefixes stripped).
        session_starts: index of the first message of every session, strictly
            increasing, starting at 0 (an empty history has no sessions).
        persona: the persona/system description when the data has one.
        meta: free-form per-history metadata (e.g. session dates, speakers).
    """

    history_id: str
    roles: tuple[str, ...]
    contents: tuple[str, ...]
    session_starts: tuple[int, ...]
    persona: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.roles) != len(self.contents):
            raise ValueError(
                f"history {self.history_id!r}: {len(self.roles)} roles but {len(self.contents)} contents"
            )
        starts = self.session_starts
        if self.contents and (not starts or starts[0] != 0):
            raise ValueError(f"history {self.history_id!r}: session_starts must begin with 0")
        if any(b <= a for a, b in zip(starts, starts[1:])) or (starts and starts[-1] >= max(len(self.contents), 1)):
            raise ValueError(f"history {self.history_id!r}: session_starts must be strictly increasing and in range")
        object.__setattr__(self, "meta", _frozen_mapping(self.meta))

    def __len__(self) -> int:
        return len(self.contents)

    def __iter__(self) -> Iterator[Message]:
        return (self.message(i) for i in range(len(self)))

    @property
    def num_sessions(self) -> int:
        return len(self.session_starts)

    def session_of(self, index: int) -> int:
        """Session number of message ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"message index {index} out of range for history {self.history_id!r} ({len(self)} messages)")
        return bisect.bisect_right(self.session_starts, index) - 1

    def message(self, index: int) -> Message:
        """The message at ``index`` as a :class:`Message` (built on demand)."""
        return Message(self.roles[index], self.contents[index], index, self.session_of(index))

    def session_ranges(self, end: int | None = None) -> list[range]:
        """Message index ranges of every session, clipped to the first ``end`` messages."""
        stop = len(self) if end is None else max(0, min(end, len(self)))
        bounds = list(self.session_starts) + [len(self)]
        ranges = []
        for a, b in zip(bounds, bounds[1:]):
            if a >= stop:
                break
            ranges.append(range(a, min(b, stop)))
        return ranges

    def render(self, indices: Sequence[int] | range, with_index: bool = False) -> str:
        """Render messages as ``Role: content`` lines (one message per line).

        Newlines inside a message are folded to spaces so that one message is
        exactly one line, which keeps memory units and messages aligned.
        """
        lines = []
        for i in indices:
            text = " ".join(self.contents[i].split())
            prefix = f"[{i}] " if with_index else ""
            lines.append(f"{prefix}{self.roles[i].capitalize()}: {text}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Question:
    """One question asked on a history.

    Attributes:
        question_id: unique id within the dataset.
        history_id: id of the history the question is asked on.
        qtype: normalised type (one of :data:`QUESTION_TYPES` for PersonaMem-style
            data; LoCoMo uses ``locomo_<category>``).
        raw_type: the type label exactly as the source file spells it.
        query: the user question or message.
        options: option texts *without* their ``(a)`` labels; empty for open questions.
        answer: gold option letter (``"a"``…) for multiple choice, gold text otherwise.
        evidence: message indices (into the history) that support the answer, or
            ``None`` when unknown (then local coverage rewards are undefined).
        end_index: the history visible to the question is ``messages[:end_index]``.
        persona_id: persona the question is about, when known.
        topic: topic label, when known.
        meta: benchmark-specific columns (distances, lengths, LoCoMo category, …).
    """

    question_id: str
    history_id: str
    qtype: str
    raw_type: str
    query: str
    options: tuple[str, ...]
    answer: str
    evidence: tuple[int, ...] | None
    end_index: int
    persona_id: str | None = None
    topic: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", _frozen_mapping(self.meta))
        if self.options and self.answer not in OPTION_LETTERS[: len(self.options)]:
            raise ValueError(
                f"question {self.question_id!r}: gold answer {self.answer!r} is not one of "
                f"{OPTION_LETTERS[: len(self.options)]}"
            )

    @property
    def is_multiple_choice(self) -> bool:
        return bool(self.options)

    @property
    def option_labels(self) -> tuple[str, ...]:
        return OPTION_LETTERS[: len(self.options)]

    @property
    def gold_option_text(self) -> str | None:
        """Text of the correct option (``None`` for open questions)."""
        if not self.options:
            return None
        return self.options[OPTION_LETTERS.index(self.answer)]

    def labelled_options(self) -> list[str]:
        """Options rendered as ``(a) text`` lines, the format the prompts use."""
        return [f"({l}) {o}" for l, o in zip(self.option_labels, self.options)]


@dataclass(frozen=True)
class ProfileStatement:
    """One gold profile statement with the messages that support it (synthetic data).

    Attributes:
        text: the statement.
        evidence: message indices of the history that support it; ``None`` = supported by
            any non-empty history (e.g. what the persona message opening every session states).
        group: statements of one group (e.g. the preference states of one topic) supersede
            each other: a history supports only the one of highest ``order`` among those it
            holds evidence for. ``None``: no group.
        order: position within the group (later = newer).
    """

    text: str
    evidence: tuple[int, ...] | None = None
    group: str | None = None
    order: int = 0


def resolve_profile(statements: Sequence[ProfileStatement], ranges: Sequence[range]) -> tuple[str, ...]:
    """The gold profile a history supports (the profiler's attainable target, eq. 10).

    ``ranges`` are the message ranges of the history H the profiler's memory was built
    from. A statement is supported when one of its evidence messages lies in H (a statement
    without evidence: when H is non-empty); within a ``group`` only the supported statement of
    highest ``order`` is kept — preference updates resolved as of the end of H. Texts are
    returned in ``statements`` order.
    """
    spans = sorted((r.start, r.stop) for r in ranges if len(r))
    starts = [a for a, _ in spans]

    def inside(i: int) -> bool:
        k = bisect.bisect_right(starts, i) - 1
        return k >= 0 and spans[k][0] <= i < spans[k][1]

    supported = [s for s in statements
                 if (bool(spans) if s.evidence is None else any(inside(i) for i in s.evidence))]
    latest: dict[str, int] = {}
    for s in supported:
        if s.group is not None:
            latest[s.group] = max(latest.get(s.group, s.order), s.order)
    return tuple(s.text for s in supported if s.group is None or s.order == latest[s.group])


@dataclass(frozen=True)
class Dataset:
    """A loaded benchmark: histories, questions and (optional) gold profiles.

    Attributes:
        name: e.g. ``"personamem-32k"``, ``"synthetic-128k"``, ``"locomo"``.
        histories: histories by id.
        questions: questions in file order.
        profiles: gold profile statements by persona id (synthetic, LoCoMo observations).
        profile_statements: the same with their supporting messages by persona id (synthetic
            data), so the gold profile can be what a given history supports
            (:meth:`profile_for` with ``ranges``).
        source: where the data was loaded from (a folder or file), for messages.
        skipped: counts of rows skipped while loading, by reason (e.g. ``negative_end_index``).
        meta: free-form dataset metadata (generator knobs, seed, sha256 of files, …).
    """

    name: str
    histories: Mapping[str, History]
    questions: tuple[Question, ...]
    profiles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    profile_statements: Mapping[str, tuple[ProfileStatement, ...]] = field(default_factory=dict)
    source: str = ""
    skipped: Mapping[str, int] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("histories", "profiles", "profile_statements", "skipped", "meta"):
            object.__setattr__(self, name, _frozen_mapping(getattr(self, name)))
        index = {}
        for q in self.questions:
            if q.question_id in index:
                raise ValueError(f"dataset {self.name!r}: duplicate question id {q.question_id!r}")
            if q.history_id not in self.histories:
                raise ValueError(
                    f"dataset {self.name!r}: question {q.question_id!r} refers to unknown history {q.history_id!r}"
                )
            index[q.question_id] = q
        object.__setattr__(self, "_by_id", MappingProxyType(index))

    def question(self, question_id: str) -> Question:
        try:
            return self._by_id[question_id]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"dataset {self.name!r} has no question {question_id!r}") from None

    def history_for(self, question: Question) -> History:
        return self.histories[question.history_id]

    def profile_for(self, question: Question, ranges: Sequence[range] | None = None) -> tuple[str, ...] | None:
        """Gold profile statements for the question's persona, if the data has them.

        With ``ranges`` (the message ranges of the history H an episode shows) and statements
        with evidence (:attr:`profile_statements`), the statements H supports
        (:func:`resolve_profile`); otherwise (or when H supports none) :attr:`profiles`.
        """
        key = question.persona_id if question.persona_id in self.profiles else question.history_id
        if ranges is not None:
            skey = question.persona_id if question.persona_id in self.profile_statements else question.history_id
            statements = self.profile_statements.get(skey)
            if statements:
                resolved = resolve_profile(statements, ranges)
                if resolved:
                    return resolved
        return self.profiles.get(key)

    def evidence_texts(self, question: Question) -> tuple[str, ...] | None:
        """Gold evidence as message texts, or ``None`` when the question has no evidence."""
        if question.evidence is None:
            return None
        history = self.history_for(question)
        return tuple(history.contents[i] for i in question.evidence)

    def subset(self, question_ids: Sequence[str], name: str | None = None) -> "Dataset":
        """A dataset holding only the given questions (and the histories they use)."""
        qs = tuple(self.question(q) for q in question_ids)
        used = {q.history_id for q in qs}
        return Dataset(
            name=name or self.name,
            histories={h: self.histories[h] for h in self.histories if h in used},
            questions=qs,
            profiles=self.profiles,
            profile_statements=self.profile_statements,
            source=self.source,
            skipped=self.skipped,
            meta=self.meta,
        )
