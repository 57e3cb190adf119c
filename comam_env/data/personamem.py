"""Loader for real PersonaMem (32k / 128k / 1M) and anything written in its format.

Files (docs/design.md §6): ``questions_{32k,128k,1M}.csv`` and
``shared_contexts_{32k,128k,1M}.jsonl``, optionally with ``evidence.jsonl``
(question id → message indices) and ``profiles.json`` (persona id → gold
profile statements) next to them — the synthetic generator writes both.

Quirks handled:

* ``all_options`` is a Python list literal with mixed quotes: parsed with
  :func:`ast.literal_eval` (never ``eval``); the ``(a) `` labels are stripped
  into :attr:`Question.options` (a label that does not match its position is an
  error).
* ``correct_answer`` ``"(c)"`` → ``"c"``; ``distance_to_ref_proportion_in_context``
  ``"92.67%"`` → ``0.9267``; the other numeric columns → ``int``. Every column
  other than the ones mapped onto :class:`Question` fields is kept in
  :attr:`Question.meta` (numeric columns parsed, unknown columns as strings).
* Rows with a negative ``end_index_in_shared_context`` (some 128k rows) are
  skipped and counted in ``Dataset.skipped["negative_end_index"]``.
* Type labels differ between splits; :func:`normalize_question_type` maps them
  to the seven :data:`QUESTION_TYPES`, including the 32k label shift (in the
  32k file ``recall_user_shared_facts`` holds acknowledge-latest questions and
  ``recalling_facts_mentioned_by_the_user`` the real recall questions). An
  unknown label is an error naming the row and value.
* Context lines are ``{shared_context_id: [{"role", "content"}, …]}``; literal
  ``User:`` / ``Assistant:`` prefixes are stripped; the ``Current user
  persona: …`` system messages stay in the history as ``system`` messages,
  each one starts a session, and the first one (without its
  ``Current user persona:`` label) becomes :attr:`History.persona`.

Malformed files raise :class:`DataFormatError` naming file, line/row and field;
missing files raise :class:`DataNotFoundError` (see :mod:`.paths`).
"""

from __future__ import annotations

import ast
import csv
import io
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import DataFormatError
from .evidence import AnnotatorConfig, HistoryIndex, annotate_evidence, read_evidence_jsonl
from .paths import resolve_files
from .personamem_files import SIZES, canonical_size, file_names  # noqa: F401  (SIZES: re-exported)
from .schema import OPTION_LETTERS, QUESTION_TYPES, Dataset, History, Question
from .textfiles import decode, load_json_text, read_json, read_text, replace_lone_surrogates


#: Columns a questions file must have (the others are optional metadata).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "question_id", "question_type", "user_question_or_message", "correct_answer",
    "all_options", "shared_context_id", "end_index_in_shared_context",
)
_INT_COLUMNS = (
    "context_length_in_tokens", "context_length_in_letters", "distance_to_ref_in_blocks",
    "distance_to_ref_in_tokens", "num_irrelevant_tokens",
)
_PROPORTION_COLUMN = "distance_to_ref_proportion_in_context"
# columns that become Question fields rather than meta
_FIELD_COLUMNS = set(REQUIRED_COLUMNS) | {"persona_id", "topic"}

#: Label spellings seen across PersonaMem splits and releases → normalised type.
#: (32k uses the "-ing" spellings; 128k the canonical ones; 1M spells
#: "track_full_preference_updates"; the benchmark's own code uses long labels.)
TYPE_ALIASES: Mapping[str, str] = {
    **{t: t for t in QUESTION_TYPES},
    "recalling_facts_mentioned_by_the_user": "recall_user_shared_facts",
    "acknowledge_latest_preferences": "acknowledge_latest_user_preferences",
    "recalling_the_latest_user_preferences": "acknowledge_latest_user_preferences",
    "track_full_preference_updates": "track_full_preference_evolution",
    "tracking_the_full_sequence_of_preference_updates": "track_full_preference_evolution",
    "recalling_the_reasons_behind_previous_updates": "revisit_reasons_behind_preference_updates",
    "recommendation_aligned_with_users_latest_preferences": "provide_preference_aligned_recommendations",
    "generalizing_to_new_scenarios": "generalize_to_new_scenarios",
    "generalizing_past_reasons_in_memory_to_new_scenarios": "generalize_to_new_scenarios",
}
#: The 32k label shift: labels whose meaning differs in the 32k file.
TYPE_OVERRIDES_32K: Mapping[str, str] = {
    "recall_user_shared_facts": "acknowledge_latest_user_preferences",
}

_LABEL_RE = re.compile(r"^\s*\(([A-Za-z])\)\s?")
_PREFIX_RE = re.compile(r"^\s*(?:User|Assistant):[ \t]*")
_PERSONA_LABEL_RE = re.compile(r"^\s*Current user persona:\s*", re.IGNORECASE)
_KEY_RE = re.compile(r'^\s*\{\s*"((?:[^"\\]|\\.)*)"\s*:')


def normalize_question_type(raw: str, size: str | None = None) -> str | None:
    """Normalised type for a raw label, or ``None`` when the label is unknown.

    ``size`` selects split-specific meanings (the 32k label shift); with
    ``size=None`` labels take their canonical meaning.
    """
    label = raw.strip()
    if size is not None and canonical_size(size) == "32k" and label in TYPE_OVERRIDES_32K:
        return TYPE_OVERRIDES_32K[label]
    return TYPE_ALIASES.get(label)


def _parse_options(text: str, path: Path, row: int) -> tuple[str, ...]:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise DataFormatError(path, f"options are not a Python list literal ({type(exc).__name__}: {exc})",
                              row=row, field="all_options") from None
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise DataFormatError(path, f"expected a non-empty list of strings, got {text[:80]!r}",
                              row=row, field="all_options")
    value = replace_lone_surrogates(list(value), path)  # a '\ud800' escape in the literal is not a character
    if len(value) > len(OPTION_LETTERS):
        raise DataFormatError(path, f"{len(value)} options; at most {len(OPTION_LETTERS)} supported",
                              row=row, field="all_options")
    options = []
    for pos, opt in enumerate(value):
        m = _LABEL_RE.match(opt)
        if m:
            if m.group(1).lower() != OPTION_LETTERS[pos]:
                raise DataFormatError(path, f"option {pos + 1} is labelled ({m.group(1)}), expected "
                                      f"({OPTION_LETTERS[pos]})", row=row, field="all_options")
            opt = opt[m.end():]
        options.append(opt.strip())
    return tuple(options)


def _parse_answer(text: str, n_options: int, path: Path, row: int) -> str:
    letter = text.strip().strip("()").strip().lower()
    if letter not in OPTION_LETTERS[:n_options]:
        raise DataFormatError(path, f"expected one of ({'), ('.join(OPTION_LETTERS[:n_options])}), got {text!r}",
                              row=row, field="correct_answer")
    return letter


def _parse_int(text: str, path: Path, row: int, field: str) -> int | None:
    t = text.strip()
    if not t:
        return None
    try:
        # pandas writes integer columns holding a NaN as floats ("182.0"): accept a zero fraction
        return int(t.split(".")[0]) if re.fullmatch(r"-?\d+\.0*", t) else int(t)
    except ValueError:
        raise DataFormatError(path, f"expected an integer, got {text!r}", row=row, field=field) from None


def _parse_proportion(text: str, path: Path, row: int) -> float | None:
    t = text.strip()
    if not t:
        return None
    try:
        return float(t[:-1]) / 100.0 if t.endswith("%") else float(t)
    except ValueError:
        raise DataFormatError(path, f"expected a percentage like '92.67%', got {text!r}",
                              row=row, field=_PROPORTION_COLUMN) from None


def _read_rows(path: Path) -> Iterable[tuple[int, int, dict[str, str]]]:
    """Yield ``(row number, first line number, row dict)``; validates the header."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    # strict UTF-8 with the file and line of a bad byte; a BOM is dropped (it used to stick to the
    # first column name, and with it every persona id was silently lost)
    text = read_text(path)
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        if not header:
            raise DataFormatError(path, "empty file (no header)", line=1)
        for col in REQUIRED_COLUMNS:
            if col not in header:
                raise DataFormatError(path, f"missing column (header has: {', '.join(header)})", line=1, field=col)
        next_line = 2
        for rowno, rec in enumerate(reader, 1):
            if None in rec:
                raise DataFormatError(path, f"{len(header) + len(rec[None])} values for {len(header)} columns",
                                      row=rowno, line=next_line)
            if any(v is None for v in rec.values()):
                missing = [k for k, v in rec.items() if v is None]
                raise DataFormatError(path, "row has too few values", row=rowno, line=next_line, field=missing[0])
            yield rowno, next_line, rec
            next_line = reader.line_num + 1


def read_questions_csv(path: str | os.PathLike, size: str | None = None,
                       skipped: dict[str, int] | None = None) -> list[Question]:
    """Parse a PersonaMem questions file (no context file needed).

    Args:
        path: the csv.
        size: the split, for split-specific label meanings; inferred from a
            ``questions_<size>.csv`` file name when ``None``.
        skipped: if given, incremented per skip reason (``negative_end_index``).

    Returns the questions in file order with ``evidence=None``.
    """
    path = Path(path)
    if size is None:
        m = re.fullmatch(r"questions_(32k|128k|1m)\.csv", path.name, re.IGNORECASE)
        size = m.group(1) if m else None
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for rowno, line, rec in _read_rows(path):
        try:
            q = _parse_row(rec, path, rowno, line, size, seen)
        except DataFormatError as exc:
            if exc.row == rowno and exc.line is None:  # add the line number for editors
                raise DataFormatError(path, exc.message, row=rowno, line=line, field=exc.field) from None
            raise
        if q is None:
            if skipped is not None:
                skipped["negative_end_index"] = skipped.get("negative_end_index", 0) + 1
            continue
        questions.append(q)
    return questions


def _parse_row(rec: dict[str, str], path: Path, rowno: int, line: int, size: str | None,
               seen: dict[str, int]) -> Question | None:
    """One csv row as a :class:`Question` (``None`` for a negative end index)."""
    qid = rec["question_id"].strip()
    if not qid:
        raise DataFormatError(path, "empty question id", row=rowno, field="question_id")
    if qid in seen:
        raise DataFormatError(path, f"duplicate question id {qid!r} (first in row {seen[qid]})",
                              row=rowno, field="question_id")
    seen[qid] = rowno
    end = _parse_int(rec["end_index_in_shared_context"], path, rowno, "end_index_in_shared_context")
    if end is None:
        raise DataFormatError(path, "empty end index", row=rowno, field="end_index_in_shared_context")
    if end < 0:
        return None
    raw_type = rec["question_type"].strip()
    qtype = normalize_question_type(raw_type, size)
    if qtype is None:
        raise DataFormatError(path, f"unknown question type {raw_type!r}; known labels: "
                              f"{', '.join(sorted(TYPE_ALIASES))}", row=rowno, field="question_type")
    options = _parse_options(rec["all_options"], path, rowno)
    answer = _parse_answer(rec["correct_answer"], len(options), path, rowno)
    history_id = rec["shared_context_id"].strip()
    if not history_id:
        raise DataFormatError(path, "empty shared context id", row=rowno, field="shared_context_id")
    meta: dict[str, Any] = {"row": rowno, "line": line}
    for col, val in rec.items():
        if col in _FIELD_COLUMNS:
            continue
        if col in _INT_COLUMNS:
            meta[col] = _parse_int(val, path, rowno, col)
        elif col == _PROPORTION_COLUMN:
            meta[col] = _parse_proportion(val, path, rowno)
        else:
            meta[col] = val
    persona = rec.get("persona_id")
    topic = rec.get("topic")
    return Question(
        question_id=qid,
        history_id=history_id,
        qtype=qtype,
        raw_type=raw_type,
        query=rec["user_question_or_message"],
        options=options,
        answer=answer,
        evidence=None,
        end_index=end,
        persona_id=persona.strip() if persona is not None and persona.strip() else None,
        topic=topic.strip() if topic is not None and topic.strip() else None,
        meta=meta,
    )


def _build_history(history_id: str, messages: Any, path: Path, lineno: int) -> History:
    if not isinstance(messages, list):
        raise DataFormatError(path, f"context {history_id!r}: expected a list of messages, got "
                              f"{type(messages).__name__}", line=lineno, field=history_id)
    roles: list[str] = []
    contents: list[str] = []
    starts: list[int] = []
    persona: str | None = None
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise DataFormatError(path, f"message {i} is not an object", line=lineno, field=f"{history_id}[{i}]")
        role, content = msg.get("role"), msg.get("content")
        if role not in ("system", "user", "assistant"):
            raise DataFormatError(path, f"message {i}: role must be system/user/assistant, got {role!r}",
                                  line=lineno, field=f"{history_id}[{i}].role")
        if not isinstance(content, str):
            raise DataFormatError(path, f"message {i}: content must be a string, got {type(content).__name__}",
                                  line=lineno, field=f"{history_id}[{i}].content")
        if role == "system":
            starts.append(i)
            if persona is None:
                persona = _PERSONA_LABEL_RE.sub("", content, count=1).strip()
        else:
            content = _PREFIX_RE.sub("", content, count=1)
        roles.append(role)
        contents.append(content)
    if contents and (not starts or starts[0] != 0):
        starts.insert(0, 0)  # messages before the first persona message form session 0
    return History(history_id=history_id, roles=tuple(roles), contents=tuple(contents),
                   session_starts=tuple(starts), persona=persona)


def read_shared_contexts(path: str | os.PathLike, ids: Iterable[str] | None = None) -> dict[str, History]:
    """Parse a shared-contexts JSONL file into histories by id.

    With ``ids`` only those contexts are decoded (the id is read from the start
    of each line first, so unneeded lines of a multi-GB 1M file are skipped
    without JSON parsing — such lines are therefore not validated beyond
    their opening ``{"id":``). Blank lines are ignored.
    """
    path = Path(path)
    wanted = None if ids is None else set(ids)
    out: dict[str, History] = {}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = decode(raw, path, line=lineno, first=lineno == 1)
            if not line.strip():
                continue
            if wanted is not None:
                m = _KEY_RE.match(line)
                if m and "\\" not in m.group(1) and m.group(1) not in wanted:
                    continue
            obj = load_json_text(line, path, line=lineno)
            if not isinstance(obj, dict) or len(obj) != 1:
                raise DataFormatError(path, "expected an object with exactly one key {shared_context_id: [messages]}",
                                      line=lineno)
            ((hid, messages),) = obj.items()
            if wanted is not None and hid not in wanted:
                continue
            if hid in out:
                raise DataFormatError(path, f"duplicate shared context id {hid!r}", line=lineno, field=hid)
            out[hid] = _build_history(hid, messages, path, lineno)
    return out


def _read_profiles(path: Path) -> dict[str, tuple[str, ...]]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataFormatError(path, "expected an object {persona_id: [statements, ...]}")
    out = {}
    for pid, statements in data.items():
        if not isinstance(statements, list) or not all(isinstance(s, str) for s in statements):
            raise DataFormatError(path, "expected a list of strings", field=str(pid))
        out[str(pid)] = tuple(statements)
    return out


def load_personamem_dir(folder: str | os.PathLike, size: str, evidence: Any = None, *,
                        name: str | None = None, annotator: AnnotatorConfig = AnnotatorConfig(),
                        progress: bool = False) -> Dataset:
    """Load one split from an explicit folder.

    Args:
        folder: holds ``questions_<size>.csv`` and ``shared_contexts_<size>.jsonl``.
        size: ``"32k"``, ``"128k"`` or ``"1M"`` (``"1m"`` accepted).
        evidence: ``None`` — ``folder/evidence.jsonl`` if present, else the
            heuristic annotator; ``"heuristic"``; ``"none"`` (no evidence);
            a path to an evidence JSONL; or a mapping question id → indices.
            Questions missing from a file/mapping get ``evidence=None``.
        name: dataset name (default ``personamem-<size>``).
        annotator: heuristic annotator knobs.
        progress: show a progress bar while annotating.
    """
    folder = Path(folder)
    size = canonical_size(size)
    qname, cname = file_names(size)
    qpath, cpath = folder / qname, folder / cname
    skipped: dict[str, int] = {}
    questions = read_questions_csv(qpath, size=size, skipped=skipped)
    histories = read_shared_contexts(cpath, ids={q.history_id for q in questions})
    for q in questions:
        if q.history_id not in histories:
            raise DataFormatError(qpath, f"unknown shared context id {q.history_id!r} (not in {cpath.name})",
                                  row=q.meta["row"], line=q.meta["line"], field="shared_context_id")
        if q.end_index > len(histories[q.history_id]):
            raise DataFormatError(qpath, f"end index {q.end_index} beyond the {len(histories[q.history_id])} "
                                  f"messages of context {q.history_id!r}", row=q.meta["row"], line=q.meta["line"],
                                  field="end_index_in_shared_context")

    ev_source, mapping = _evidence_mapping(evidence, folder)
    if ev_source.startswith("file:") or ev_source == "mapping":
        ev_path = ev_source[5:] if ev_source.startswith("file:") else "<mapping>"
        new = []
        for q in questions:
            ev = mapping.get(q.question_id)
            if ev is not None:
                bad = [i for i in ev if i >= q.end_index]
                if bad:
                    raise DataFormatError(ev_path, f"question {q.question_id!r}: evidence indices {bad} are not "
                                          f"before its end index {q.end_index}", field="evidence")
                ev = tuple(sorted(set(int(i) for i in ev)))
            new.append(_with_evidence(q, ev))
        questions = new
    elif ev_source == "heuristic":
        questions = _annotate(questions, histories, annotator, progress)

    profiles: dict[str, tuple[str, ...]] = {}
    if (folder / "profiles.json").is_file():
        profiles = _read_profiles(folder / "profiles.json")
    return Dataset(
        name=name or f"personamem-{size.lower()}",
        histories=histories,
        questions=tuple(questions),
        profiles=profiles,
        source=str(folder),
        skipped=skipped,
        meta={"size": size, "evidence": ev_source, "files": (str(qpath), str(cpath))},
    )


def _with_evidence(q: Question, ev: tuple[int, ...] | None) -> Question:
    from dataclasses import replace

    return replace(q, evidence=ev)


def _evidence_mapping(evidence: Any, folder: Path) -> tuple[str, Mapping[str, Any]]:
    if evidence is None:
        auto = folder / "evidence.jsonl"
        if auto.is_file():
            return f"file:{auto}", read_evidence_jsonl(auto)
        return "heuristic", {}
    if isinstance(evidence, str) and evidence in ("heuristic", "none"):
        return evidence, {}
    if isinstance(evidence, Mapping):
        return "mapping", evidence
    p = Path(evidence)
    if not p.is_file():
        raise FileNotFoundError(f"evidence file not found: {p}")
    return f"file:{p}", read_evidence_jsonl(p)


def _annotate(questions: list[Question], histories: Mapping[str, History], config: AnnotatorConfig,
              progress: bool) -> list[Question]:
    indices: dict[str, HistoryIndex] = {}
    it: Iterable[Question] = questions
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(questions, desc="annotating evidence", unit="q")
    out = []
    for q in it:
        idx = indices.get(q.history_id)
        if idx is None:
            idx = indices[q.history_id] = HistoryIndex(histories[q.history_id])
        ev = annotate_evidence(idx, q.end_index, q.query, q.gold_option_text or "",
                               q.meta.get("distance_to_ref_in_tokens"), config)
        out.append(_with_evidence(q, ev))
    return out


def download_command(size: str = "32k") -> str:
    """The shell command that downloads a PersonaMem split."""
    return f"comam-env data download personamem --split {canonical_size(size)}"


def load_personamem(size: str, data_dir: str | os.PathLike | None = None, evidence: Any = None,
                    download: bool = False, **kwargs: Any) -> Dataset:
    """Load a PersonaMem split from the first folder that has both files.

    Folders: ``data_dir`` → ``$COMAM_DATA_DIR`` → ``<cache>/personamem``
    (:func:`comam_env.data.paths.resolve_files`). With ``download=True`` a
    split missing everywhere is downloaded into the cache first (needs
    network; sha256-verified where known). Otherwise a missing split raises
    :class:`DataNotFoundError` with the download command and the synthetic
    alternatives. Extra keyword arguments go to :func:`load_personamem_dir`.
    """
    size = canonical_size(size)
    names = list(file_names(size))
    from .errors import DataNotFoundError

    try:
        found = resolve_files(names, data_dir, subdir="personamem", download_command=download_command(size))
    except DataNotFoundError:
        if not download:
            raise
        from .download import download_personamem

        found = download_personamem(size)
    return load_personamem_dir(found[names[0]].parent, size, evidence=evidence, **kwargs)
