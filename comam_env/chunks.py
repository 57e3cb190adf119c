"""Chunk plans of a history and the process-wide per-history caches the environment reads.

The extractor acts once per chunk: a run of whole consecutive messages of one session within
``chunk_tokens`` (:func:`plan_chunks`). Token counts, chunk plans and normalised ``Role: text``
lines are computed once per :class:`~comam_env.data.schema.History` object and shared by every
environment of the process (a pool of envs over one dataset holds one copy); results never
depend on them. :func:`clear_caches` drops them (benchmarks measure cold episodes with it).
"""

from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np

from comam_env.charset import normalize_text
from comam_env.data.schema import History
from comam_env.text import estimate_tokens

__all__ = ["ROLE_PREFIX_TOKENS", "plan_chunks", "history_chunk_plan", "history_token_counts", "history_lines",
           "clear_caches"]

#: Extra tokens a message costs in a chunk for its ``Role:`` prefix.
ROLE_PREFIX_TOKENS = 2


def plan_chunks(token_counts: Sequence[int], ranges: Sequence[range], chunk_tokens: int | None) -> list[tuple[int, int]]:
    """Cut sessions into chunks of whole messages.

    Args:
        token_counts: estimated tokens of every message of the history (indexable by message index).
        ranges: the message ranges of the sessions of H, in order.
        chunk_tokens: budget per chunk; ``None`` = one chunk per session.

    Returns:
        ``(start, stop)`` message spans. A session within budget is one chunk; a
        longer one is packed greedily into consecutive runs within budget; a
        message alone over budget is a chunk by itself.
    """
    ranges = [r for r in ranges if len(r)]
    if chunk_tokens is None:
        return [(r.start, r.stop) for r in ranges]
    if not ranges:
        return []
    counts = np.asarray(token_counts, dtype=np.int64)
    if len(ranges) <= 8:
        # Few sessions (evidence-session episodes): a sum per session; a cumulative sum
        # over the whole history would cost more than the sessions themselves.
        totals = [int(counts[r.start:r.stop].sum()) for r in ranges]
    else:
        # Session totals from one cumulative sum over the span the sessions cover:
        # only sessions over budget are walked message by message.
        lo = ranges[0].start if all(a.start <= b.start for a, b in zip(ranges, ranges[1:])) else min(r.start for r in ranges)
        hi = max(r.stop for r in ranges)
        csum = np.concatenate(([0], np.cumsum(counts[lo:hi])))
        starts = np.fromiter((r.start - lo for r in ranges), dtype=np.int64, count=len(ranges))
        stops = np.fromiter((r.stop - lo for r in ranges), dtype=np.int64, count=len(ranges))
        totals = (csum[stops] - csum[starts]).tolist()
    spans: list[tuple[int, int]] = []
    for r, total in zip(ranges, totals):
        if total <= chunk_tokens:
            spans.append((r.start, r.stop))
            continue
        start, run = r.start, 0
        for i, t in zip(r, counts[r.start:r.stop].tolist()):
            if i > start and run + t > chunk_tokens:
                spans.append((start, i))
                start, run = i, 0
            run += t
        spans.append((start, r.stop))
    return spans


def _message_tokens(text: str) -> int:
    return estimate_tokens(text) + ROLE_PREFIX_TOKENS


# Token counts are shared by every env over the same (immutable) History object:
# counting a 1M-token history takes a second, so it is done once per process, not
# once per env or per reset. Keyed by id() with a weak reference to detect reuse of
# an id after the history is gone (hashing a History would hash all its messages).
# The third element memoises chunk plans of the history: (session spans, chunk_tokens) -> spans.
_TOKEN_COUNTS: dict[int, tuple[weakref.ref, np.ndarray, dict]] = {}


def _token_entry(history: History) -> tuple[weakref.ref, np.ndarray, dict]:
    entry = _TOKEN_COUNTS.get(id(history))
    if entry is None or entry[0]() is not history:
        for key in [k for k, e in _TOKEN_COUNTS.items() if e[0]() is None]:
            del _TOKEN_COUNTS[key]
        entry = (weakref.ref(history), np.full(len(history), -1, dtype=np.int64), {})
        _TOKEN_COUNTS[id(history)] = entry
    return entry


def history_chunk_plan(history: History, ranges: Sequence[range], chunk_tokens: int | None) -> tuple[tuple[int, int], ...]:
    """:func:`plan_chunks` of ``ranges`` with the history's token counts, memoised per
    history and (ranges, ``chunk_tokens``): episodes on one history and question group
    replay the same plan (every rollout of a group, every epoch)."""
    plans = _token_entry(history)[2]
    key = (tuple((r.start, r.stop) for r in ranges), chunk_tokens)
    spans = plans.get(key)
    if spans is None:
        spans = plans[key] = tuple(plan_chunks(history_token_counts(history, ranges), ranges, chunk_tokens))
    return spans


def history_token_counts(history: History, ranges: Sequence[range] | None = None) -> np.ndarray:
    """Estimated tokens of every message (text + :data:`ROLE_PREFIX_TOKENS`), cached per
    history; only the messages in ``ranges`` (default: all) are guaranteed counted,
    the others may be ``-1``."""
    counts = _token_entry(history)[1]
    contents = history.contents
    ranges = [r for r in (ranges if ranges is not None else [range(len(history))]) if len(r)]
    if ranges:
        lo, hi = min(r.start for r in ranges), max(r.stop for r in ranges)
        if counts[lo:hi].min() >= 0:  # everything in the span already counted (the usual case)
            return counts
    for r in ranges:
        if len(r) and (counts[r.start:r.stop] < 0).any():
            for i in r:
                if counts[i] < 0:
                    counts[i] = _message_tokens(contents[i])
    return counts


# Normalised ``Role: text`` lines of every message, per History object (same keying
# as the token counts): history messages are rendered and normalised once per
# process, lazily for the messages an episode shows, and shared by every env
# (pools of envs over one dataset hold one copy, not one per env).
_LINES: dict[int, tuple[weakref.ref, list]] = {}


def history_lines(history: History, start: int, stop: int) -> list:
    """The list of normalised rendered lines of ``history`` (cached per history), with
    at least ``[start:stop]`` filled; other entries may be ``None``.

    A line is ``normalize_text(history.render([i]))[0]``. Joining lines with
    ``"\n"`` gives exactly ``normalize_text(history.render(range(start, stop)))[0]``
    because a rendered message holds no line break (``History.render`` folds white
    space) — except when a role holds ``"\r"``, which :meth:`comam_env.episode.Episode.chunk_text`
    detects (the entry is then ``False``) and renders as a whole.
    """
    entry = _LINES.get(id(history))
    if entry is None or entry[0]() is not history:
        for key in [k for k, (ref, _) in _LINES.items() if ref() is None]:
            del _LINES[key]
        entry = (weakref.ref(history), [None] * len(history))
        _LINES[id(history)] = entry
    lines = entry[1]
    if stop > start and (lines[start] is None or lines[stop - 1] is None or None in lines[start:stop]):
        if all(x is None for x in lines[start:stop]):
            # One render and one normalisation of the whole run, cut at its line breaks
            # (one per message unless a role holds a line break: then message by message).
            raw = history.render(range(start, stop))
            if "\r" not in raw:
                cut = normalize_text(raw)[0].split("\n")
                if len(cut) == stop - start:
                    lines[start:stop] = cut
                    return lines
        render = history.render
        for i in range(start, stop):
            if lines[i] is None:
                raw = render((i,))
                lines[i] = False if "\r" in raw else normalize_text(raw)[0]
    return lines


def clear_caches() -> None:
    """Drop the process-wide caches: token counts, chunk plans and normalised history lines
    (benchmarks measure cold episodes with it)."""
    _TOKEN_COUNTS.clear()
    _LINES.clear()
