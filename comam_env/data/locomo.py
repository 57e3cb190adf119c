"""LoCoMo loader (``snap-research/LoCoMo``, ``data/locomo10.json``; CC BY-NC 4.0).

The file is a JSON list of samples; each sample becomes one :class:`History`
and its ``qa`` items become open-ended :class:`Question` s.

History
  Messages come from ``conversation["session_<k>"]`` in numeric ``k`` order
  (``session_10`` after ``session_9``). Both speakers are people, so roles are
  a convention: ``speaker_a`` → ``"user"``, ``speaker_b`` → ``"assistant"``, and
  every content keeps the speaker's name as ``"Name: text"`` so nothing is lost.
  A turn that shares an image keeps its caption as text:
  ``"Name: text [shares a photo: <blip_caption>]"`` (``[shares a photo]`` when an
  ``img_url`` has no caption). Empty session lists are skipped (counted in
  ``Dataset.skipped["empty_session"]``); ``session_<k>_date_time`` stamps
  without a session are ignored. ``History.meta`` holds:

  * ``session_dates`` — date string of every kept session (``None`` if absent),
  * ``session_numbers`` — the ``k`` of every kept session,
  * ``dia_index`` — ``dia_id`` → message index,
  * ``speakers`` — ``{"user": speaker_a, "assistant": speaker_b}``,
  * ``observations`` — per speaker name, the ``observation`` facts (in session order).

Questions
  Id ``"<sample_id>:<j>"`` (``j`` = position in ``qa``), ``history_id`` and
  ``persona_id`` = ``sample_id``, ``options = ()``, ``end_index`` = the whole
  history (LoCoMo asks after the last session). Answers are open text
  (numbers such as ``2022`` become ``"2022"``). Categories follow the
  convention of the released file used by later work (Mem0, A-Mem):
  1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial;
  ``qtype = "locomo_<name>"`` (e.g. ``locomo_multi_hop``), ``raw_type`` the number
  as text, ``meta["category"]`` the number. Category 5 questions use
  ``adversarial_answer`` as ``answer`` (the trap answer; the correct response is
  to say the information is not available, see :mod:`comam_env.rewards`) and keep
  it in ``meta["adversarial_answer"]``.

Evidence
  Each evidence entry is scanned for ``D<session>:<turn>`` ids (the real file
  has entries such as ``"D8:6; D9:17"``, zero-padded ``"D30:05"`` and ``"D:11:26"``
  for ``D11:26``, so ids are compared as numbers). Ids that name no turn are dropped, counted in
  ``Dataset.skipped["unknown_evidence_id"]`` and listed in
  ``Dataset.meta["unknown_evidence"]`` (question id + raw entry). A question
  whose evidence list is empty, or whose ids are all unknown, gets
  ``evidence=None`` (local coverage rewards are then undefined, never invented).
  Evidence indices are sorted and de-duplicated.

Gold profiles
  ``Dataset.profiles[sample_id]`` holds every ``observation`` fact of both
  speakers (facts already name the speaker) in conversation order: by session,
  then by the turn of the fact's ``dia_id`` — not grouped by speaker.

Malformed structure (not a list, missing ``conversation``/``speaker_a``/turn
fields, a speaker that is neither speaker, a bad category, …) raises
:class:`DataFormatError` naming the file, the sample and the field.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from .errors import DataFormatError, DataNotFoundError
from .schema import Dataset, History, Question
from .textfiles import decode, load_json_text

#: The file name inside the LoCoMo repository's ``data/`` folder.
LOCOMO_FILE = "locomo10.json"
#: Where to get it (the loader itself never downloads).
LOCOMO_URL = "https://github.com/snap-research/locomo/raw/main/data/locomo10.json"

#: Category number → name (convention of the released file, see module docstring).
CATEGORY_NAMES: dict[int, str] = {
    1: "multi_hop",
    2: "temporal",
    3: "open_domain",
    4: "single_hop",
    5: "adversarial",
}

_SESSION_RE = re.compile(r"^session_(\d+)$")
#: ``D<session>:<turn>``; the real file also spells one id ``D:11:26`` (a stray colon).
_DIA_RE = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)", re.IGNORECASE)


def download_command() -> str:
    """How to fetch the file into the cache (shown in errors; the loader never downloads)."""
    return f"comam-env data download locomo   (or save {LOCOMO_URL} as <cache>/locomo/{LOCOMO_FILE})"


def _canonical_dia(dia_id: str) -> str | None:
    m = _DIA_RE.fullmatch(dia_id.strip())
    return f"D{int(m.group(1))}:{int(m.group(2))}" if m else None


class _Ctx:
    """Where we are in the file, for error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, where: str, message: str) -> DataFormatError:
        return DataFormatError(self.path, message, field=where)


def _require(ctx: _Ctx, obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ctx.error(f"{where}.{key}", "missing")
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ctx.error(f"{where}.{key}", f"expected {names}, got {type(value).__name__}")
    return value


def _turn_text(ctx: _Ctx, turn: dict, where: str) -> str:
    text = turn.get("text", "")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ctx.error(f"{where}.text", f"expected str, got {type(text).__name__}")
    caption = turn.get("blip_caption")
    if caption is not None and not isinstance(caption, str):
        raise ctx.error(f"{where}.blip_caption", f"expected str, got {type(caption).__name__}")
    parts = [text.strip()] if text.strip() else []
    if caption and caption.strip():
        parts.append(f"[shares a photo: {caption.strip()}]")
    elif turn.get("img_url"):
        parts.append("[shares a photo]")
    if not parts:
        raise ctx.error(f"{where}.text", "turn has neither text nor an image caption")
    return " ".join(parts)


def _build_history(ctx: _Ctx, sample_id: str, conv: Any, where: str,
                   skipped: Counter) -> tuple[History, dict[str, int]]:
    """The sample's history and its canonical dia_id (``D<k>:<j>``) → message index map."""
    if not isinstance(conv, dict):
        raise ctx.error(f"{where}.conversation", f"expected an object, got {type(conv).__name__}")
    cw = f"{where}.conversation"
    speaker_a = _require(ctx, conv, "speaker_a", str, cw)
    speaker_b = _require(ctx, conv, "speaker_b", str, cw)
    role_of = {speaker_a: "user", speaker_b: "assistant"}
    sessions = sorted((int(m.group(1)), key) for key in conv if (m := _SESSION_RE.match(key)))
    roles: list[str] = []
    contents: list[str] = []
    starts: list[int] = []
    dates: list[str | None] = []
    numbers: list[int] = []
    dia_index: dict[str, int] = {}
    canon_index: dict[str, int] = {}
    for k, key in sessions:
        turns = conv[key]
        sw = f"{cw}.{key}"
        if not isinstance(turns, list):
            raise ctx.error(sw, f"expected a list of turns, got {type(turns).__name__}")
        if not turns:
            skipped["empty_session"] += 1
            continue
        starts.append(len(contents))
        date = conv.get(f"{key}_date_time")
        dates.append(date if isinstance(date, str) else None)
        numbers.append(k)
        for j, turn in enumerate(turns):
            tw = f"{sw}[{j}]"
            if not isinstance(turn, dict):
                raise ctx.error(tw, f"expected an object, got {type(turn).__name__}")
            speaker = _require(ctx, turn, "speaker", str, tw)
            dia_id = _require(ctx, turn, "dia_id", str, tw)
            if speaker not in role_of:
                raise ctx.error(f"{tw}.speaker",
                                f"{speaker!r} is neither speaker_a {speaker_a!r} nor speaker_b {speaker_b!r}")
            index = len(contents)
            roles.append(role_of[speaker])
            contents.append(f"{speaker}: {_turn_text(ctx, turn, tw)}")
            canon = _canonical_dia(dia_id)
            if dia_id in dia_index or (canon is not None and canon in canon_index):
                # Keep the first turn; the id is ambiguous for evidence anyway.
                skipped["duplicate_dia_id"] += 1
                continue
            dia_index[dia_id] = index
            if canon is not None:
                canon_index[canon] = index
    if not contents:
        raise ctx.error(cw, f"sample {sample_id!r} has no conversation turns (no non-empty session_<k> list)")
    history = History(
        history_id=sample_id,
        roles=tuple(roles),
        contents=tuple(contents),
        session_starts=tuple(starts),
        persona=None,
        meta={
            "session_dates": tuple(dates),
            "session_numbers": tuple(numbers),
            "dia_index": dia_index,
            "speakers": {"user": speaker_a, "assistant": speaker_b},
        },
    )
    return history, canon_index


def _observations(ctx: _Ctx, sample: dict, where: str) -> tuple[dict[str, list[str]], list[str]]:
    """(facts per speaker, every fact in conversation order).

    Conversation order: by session number, then by the turn of the fact's
    ``dia_id`` (facts without one keep their place after the session's dated ones).
    """
    obs = sample.get("observation")
    if obs is None:
        return {}, []
    if not isinstance(obs, dict):
        raise ctx.error(f"{where}.observation", f"expected an object, got {type(obs).__name__}")

    def session_no(key: str) -> int:
        m = re.search(r"(\d+)", key)
        return int(m.group(1)) if m else 0

    facts: dict[str, list[str]] = {}
    ordered: list[tuple[int, float, int, str]] = []  # (session, turn, position in file, fact)
    for key in sorted(obs, key=lambda k: (session_no(k), k)):
        per_speaker = obs[key]
        ow = f"{where}.observation.{key}"
        if not isinstance(per_speaker, dict):
            raise ctx.error(ow, f"expected an object of speaker -> facts, got {type(per_speaker).__name__}")
        for speaker, items in per_speaker.items():
            if not isinstance(items, list):
                raise ctx.error(f"{ow}.{speaker}", f"expected a list of facts, got {type(items).__name__}")
            for n, item in enumerate(items):
                # A fact is [text, dia_id(s)] in the released file; a bare string is accepted too.
                text = item[0] if isinstance(item, (list, tuple)) and item else item
                if not isinstance(text, str):
                    raise ctx.error(f"{ow}.{speaker}[{n}]", "expected [fact text, dia_id] or a string")
                if text.strip():
                    facts.setdefault(speaker, []).append(text.strip())
                    dia = item[1] if isinstance(item, (list, tuple)) and len(item) > 1 else None
                    m = _DIA_RE.search(dia) if isinstance(dia, str) else None
                    turn = float(m.group(2)) if m else float("inf")
                    ordered.append((session_no(key), turn, len(ordered), text.strip()))
    return facts, [f for *_, f in sorted(ordered)]


def _questions(ctx: _Ctx, sample: dict, sample_id: str, history: History, canon_index: dict[str, int],
               where: str, skipped: Counter, unknown: list[dict[str, str]]) -> list[Question]:
    qa = sample.get("qa", [])
    if not isinstance(qa, list):
        raise ctx.error(f"{where}.qa", f"expected a list, got {type(qa).__name__}")
    out = []
    for j, item in enumerate(qa):
        qw = f"{where}.qa[{j}]"
        if not isinstance(item, dict):
            raise ctx.error(qw, f"expected an object, got {type(item).__name__}")
        qid = f"{sample_id}:{j}"
        query = _require(ctx, item, "question", str, qw)
        cat_raw = _require(ctx, item, "category", (int, str), qw)
        try:
            category = int(cat_raw)
        except ValueError:
            raise ctx.error(f"{qw}.category", f"not a number: {cat_raw!r}") from None
        if category not in CATEGORY_NAMES:
            raise ctx.error(f"{qw}.category", f"unknown category {category} (expected 1-5)")
        meta: dict[str, Any] = {"category": category, "category_name": CATEGORY_NAMES[category]}
        if category == 5:
            raw_answer = item.get("adversarial_answer", item.get("answer", ""))
            meta["adversarial_answer"] = "" if raw_answer is None else str(raw_answer)
        else:
            if "answer" not in item:
                raise ctx.error(f"{qw}.answer", "missing (only category 5 may omit it)")
            raw_answer = item["answer"]
        if isinstance(raw_answer, (dict, list)):
            raise ctx.error(f"{qw}.answer", f"expected text or a number, got {type(raw_answer).__name__}")
        answer = "" if raw_answer is None else str(raw_answer)

        entries = item.get("evidence", [])
        if entries is None:
            entries = []
        if isinstance(entries, str):
            entries = [entries]
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ctx.error(f"{qw}.evidence", "expected a list of dia_id strings")
        meta["evidence_dia_ids"] = tuple(entries)
        indices: set[int] = set()
        for entry in entries:
            ids = [f"D{int(a)}:{int(b)}" for a, b in _DIA_RE.findall(entry)]
            if not ids:
                skipped["unknown_evidence_id"] += 1
                unknown.append({"question_id": qid, "dia_id": entry})
                continue
            for d in ids:
                if d in canon_index:
                    indices.add(canon_index[d])
                else:
                    skipped["unknown_evidence_id"] += 1
                    unknown.append({"question_id": qid, "dia_id": d})
        out.append(Question(
            question_id=qid,
            history_id=sample_id,
            qtype=f"locomo_{CATEGORY_NAMES[category]}",
            raw_type=str(category),
            query=query,
            options=(),
            answer=answer,
            evidence=tuple(sorted(indices)) if indices else None,
            end_index=len(history),
            persona_id=sample_id,
            topic=None,
            meta=meta,
        ))
    return out


def read_locomo(path: str | os.PathLike) -> Dataset:
    """Load a ``locomo10.json``-format file (see module docstring)."""
    path = Path(path)
    ctx = _Ctx(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataNotFoundError([path.name], [path.parent], download_command=download_command()) from None
    # strict UTF-8 (BOM allowed), syntax/nesting errors naming the line, lone surrogates replaced
    data = load_json_text(decode(raw, path), path)
    if not isinstance(data, list):
        raise DataFormatError(path, f"expected a JSON list of samples, got {type(data).__name__}")

    histories: dict[str, History] = {}
    questions: list[Question] = []
    profiles: dict[str, tuple[str, ...]] = {}
    skipped: Counter = Counter()
    unknown: list[dict[str, str]] = []
    for i, sample in enumerate(data):
        where = f"[{i}]"
        if not isinstance(sample, dict):
            raise ctx.error(where, f"sample {i}: expected an object, got {type(sample).__name__}")
        sample_id = _require(ctx, sample, "sample_id", (str, int), where)
        sample_id = str(sample_id)
        where = f"[{i}] (sample {sample_id!r})"
        if sample_id in histories:
            raise ctx.error(f"{where}.sample_id", f"duplicate sample id {sample_id!r}")
        if "conversation" not in sample:
            raise ctx.error(f"{where}.conversation", "missing")
        history, canon_index = _build_history(ctx, sample_id, sample["conversation"], where, skipped)
        facts, in_order = _observations(ctx, sample, where)
        if facts:
            history = History(history.history_id, history.roles, history.contents, history.session_starts,
                              history.persona,
                              {**history.meta, "observations": {k: tuple(v) for k, v in facts.items()}})
            profiles[sample_id] = tuple(in_order)
        histories[sample_id] = history
        questions += _questions(ctx, sample, sample_id, history, canon_index, where, skipped, unknown)

    return Dataset(
        name="locomo",
        histories=histories,
        questions=tuple(questions),
        profiles=profiles,
        source=str(path),
        skipped=dict(skipped),
        meta={
            "unknown_evidence": tuple(unknown),
            "categories": dict(CATEGORY_NAMES),
            "license": "CC BY-NC 4.0",
        },
    )


def load_locomo(data_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None) -> Dataset:
    """Load LoCoMo from an explicit ``path``, else ``locomo10.json`` resolved like every
    data file: ``data_dir`` (and ``data_dir/locomo``), ``$COMAM_DATA_DIR/locomo`` and
    ``$COMAM_DATA_DIR``, then ``<cache>/locomo``.

    Raises:
        DataNotFoundError: the file is nowhere; the message lists the folders searched
            and the download command.
        DataFormatError: the file is malformed (names file, sample and field).
    """
    if path is not None:
        return read_locomo(path)
    from .paths import resolve_files

    found = resolve_files([LOCOMO_FILE], data_dir, subdir="locomo", download_command=download_command())
    return read_locomo(found[LOCOMO_FILE])
