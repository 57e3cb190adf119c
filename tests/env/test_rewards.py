"""Rewards (docs/design.md §3): hand-computed cases for every formula, matching, parsing, F1."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comam_env.data.schema import Question
from comam_env.matching import _fast_words
from comam_env.rewards import (
    ABSTENTION_PHRASES,
    EMBEDDING_TAU,
    AnswerParts,
    EmbeddingMatcher,
    TokenRecallMatcher,
    answer_reward,
    coverage_reward,
    extract_tag,
    extractor_reward,
    is_abstention,
    is_option_correct,
    match_units,
    parse_option,
    resolve_matcher,
    retriever_reward,
    token_f1,
)
from comam_env.text import word_tokens

# ------------------------------------------------------------------ similarity


def test_token_recall_similarity_by_hand():
    # content("I adopted a golden retriever named Max") = {adopted, golden, retriever, named, max} (5)
    # content("My dog Max is a golden retriever")       = {dog, max, golden, retriever}
    # intersection = {max, golden, retriever} (3) -> sim = 3/5 = 0.6
    # second evidence "Hello there" has no content tokens after stop words? "hello" survives:
    #   content = {hello}; unit has no "hello" -> 0.0
    # third evidence "I am the one" -> content {one} -> 0.0; "it is" -> {} -> defined as 0
    sim = TokenRecallMatcher().similarity_matrix(
        ["My dog Max is a golden retriever"],
        ["I adopted a golden retriever named Max", "Hello there", "it is"],
    )
    assert sim.shape == (1, 3)
    assert sim[0, 0] == pytest.approx(0.6)
    assert sim[0, 1] == 0.0
    assert sim[0, 2] == 0.0


def test_similarity_is_evidence_recall_not_symmetric():
    # unit ⊂ evidence: content(u)={jazz}, content(e)={jazz, rock} -> 1/2
    # swapped:          content(u)={jazz, rock}, content(e)={jazz} -> 1/1
    m = TokenRecallMatcher()
    assert m.similarity_matrix(["jazz"], ["jazz rock"])[0, 0] == 0.5
    assert m.similarity_matrix(["jazz rock"], ["jazz"])[0, 0] == 1.0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_fast_word_tokenizer_equals_word_tokens(text):
    assert _fast_words(text) == word_tokens(text)


# ------------------------------------------------------------------ matching


class FixedMatcher:
    """A custom matcher returning a given matrix (tests the protocol and the greedy rule)."""

    def __init__(self, sim):
        self.sim = np.asarray(sim, dtype=float)

    def similarity_matrix(self, units, evidence):
        return self.sim


def test_greedy_takes_highest_first_and_is_one_to_one():
    # pairs >= 0.5 sorted: (u0,e0,.9) take; (u1,e0,.85) e0 used; (u0,e1,.8) u0 used -> c = 1.
    # (A maximum matching would be 2; greedy-by-similarity is the documented rule.)
    r = match_units(["x", "y"], ["p", "q"], matcher=FixedMatcher([[0.9, 0.8], [0.85, 0.1]]), tau=0.5)
    assert r.count == 1
    assert r.pairs == ((0, 0, 0.9),)


def test_greedy_ties_broken_by_unit_then_evidence_index():
    r = match_units(["x", "y"], ["p", "q"], matcher=FixedMatcher([[0.7, 0.7], [0.7, 0.7]]), tau=0.5)
    assert [(u, e) for u, e, _ in r.pairs] == [(0, 0), (1, 1)]
    # threshold is inclusive: sim == tau matches
    r = match_units(["x"], ["p"], matcher=FixedMatcher([[0.5]]), tau=0.5)
    assert r.count == 1


def test_custom_matcher_with_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="similarity matrix"):
        match_units(["x", "y"], ["p"], matcher=FixedMatcher([[1.0, 1.0]]))


def test_two_identical_units_match_one_evidence_once():
    # units: 2 copies of the evidence line, |E| = 1 -> c = 1
    # recall = 1/1 = 1; jaccard = 1/(2+1-1) = 0.5
    # extractor: 0.8*1 + 0.2*0.5 = 0.9 ; retriever: 0.2*1 + 0.8*0.5 = 0.6
    mem = "I love jazz music\nI love jazz music"
    ev = ["I love jazz music"]
    ext = extractor_reward(mem, ev)
    assert (ext.count, ext.n_units, ext.n_evidence) == (1, 2, 1)
    assert ext.matched_units == (0,)
    assert ext.recall == 1.0 and ext.jaccard == 0.5
    assert ext.reward == pytest.approx(0.9)
    assert retriever_reward(mem, ev).reward == pytest.approx(0.6)


def test_unknown_matcher_name_lists_choices():
    with pytest.raises(ValueError, match="token-recall"):
        resolve_matcher("bm25")


# ------------------------------------------------------------------ coverage formulas

EVIDENCE = [
    "I switched from running to swimming because of my knee injury",
    "My sister Clara works as a nurse in Boston",
]
HISTORY = [
    "Hi there, how is your week going?",
    EVIDENCE[0],
    "That sounds like a sensible change for your joints.",
    "Also I started learning the cello last month",
    "Wonderful, string instruments are rewarding.",
    EVIDENCE[1],
    "Nursing is demanding work, she must be dedicated.",
    "I baked sourdough bread on Sunday",
    "Sourdough takes patience.",
    "Planning a trip to Lisbon in October",
]


def test_oracle_memory_scores_one():
    for fn in (extractor_reward, retriever_reward):
        parts = fn("\n".join(EVIDENCE), EVIDENCE)
        assert (parts.reward, parts.recall, parts.jaccard) == (1.0, 1.0, 1.0)
        assert parts.matched_evidence == (0, 1)


def test_empty_memory_scores_zero():
    for mem in ("", "   \n\n", [], None):
        parts = extractor_reward(mem, EVIDENCE)
        assert parts.reward == 0.0 and parts.count == 0 and parts.n_units == 0
        assert parts.jaccard == 0.0 and parts.recall == 0.0


def test_whole_history_copy_has_full_recall_but_low_jaccard():
    # |M| = 10 lines, |E| = 2, c = 2
    # recall = 2/2 = 1 ; jaccard = 2/(10+2-2) = 0.2
    # extractor = 0.8*1 + 0.2*0.2 = 0.84 ; retriever = 0.2*1 + 0.8*0.2 = 0.36
    mem = "\n".join(HISTORY)
    ext = extractor_reward(mem, EVIDENCE)
    ret = retriever_reward(mem, EVIDENCE)
    assert ext.recall == 1.0 and ext.jaccard == pytest.approx(0.2)
    assert ext.reward == pytest.approx(0.84)
    assert ret.reward == pytest.approx(0.36)
    assert ext.matched_units == (1, 5)


def test_partial_memory_by_hand():
    # units: the first evidence line + 2 unrelated lines -> |M| = 3, |E| = 2, c = 1
    # recall = 1/2 ; jaccard = 1/(3+2-1) = 0.25
    # extractor = 0.8*0.5 + 0.2*0.25 = 0.45 ; retriever = 0.2*0.5 + 0.8*0.25 = 0.3
    # coverage with w = 0.5: 0.5*0.5 + 0.5*0.25 = 0.375
    mem = [EVIDENCE[0], "I baked sourdough bread on Sunday", "Planning a trip to Lisbon"]
    assert extractor_reward(mem, EVIDENCE).reward == pytest.approx(0.45)
    assert retriever_reward(mem, EVIDENCE).reward == pytest.approx(0.3)
    parts = coverage_reward(mem, EVIDENCE, 0.5)
    assert parts.reward == pytest.approx(0.375)
    assert parts.to_dict() == {
        "reward": parts.reward, "recall": 0.5, "jaccard": 0.25, "weight": 0.5, "count": 1,
        "matched_evidence": [0], "matched_units": [0], "n_units": 3, "n_evidence": 2,
    }


def test_paraphrase_below_and_above_threshold():
    # evidence content = {switched, running, swimming, because, knee, injury} (6)
    # "swimming now, knee injury" -> {swimming, now, knee, injury}: 3/6 = 0.5 >= 0.5 -> match
    # "my knee hurts"             -> {knee, hurts}: 1/6 < 0.5 -> no match
    assert extractor_reward(["swimming now, knee injury"], EVIDENCE[:1]).count == 1
    assert extractor_reward(["my knee hurts"], EVIDENCE[:1]).count == 0
    # tau can be changed: 1/6 >= 0.1
    assert extractor_reward(["my knee hurts"], EVIDENCE[:1], tau=0.1).count == 1


def test_undefined_when_no_evidence():
    assert extractor_reward("anything", None) is None
    assert retriever_reward("anything", []) is None
    assert coverage_reward("anything", (), 0.5) is None


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="not a single str"):
        extractor_reward("x", "an evidence string")
    with pytest.raises(ValueError, match="weight"):
        coverage_reward("x", ["y"], 1.5)
    with pytest.raises(TypeError, match="memory unit 1"):
        extractor_reward(["ok", 3], ["y"])


def test_text_memory_long_line_is_split_into_sentences():
    # one line of > 60 words holding the evidence as one sentence -> split into 2 units
    filler = "We talked about many unrelated things " * 10 + "today."
    mem = filler + " " + EVIDENCE[0] + "."
    parts = extractor_reward(mem, EVIDENCE[:1])
    assert parts.n_units == 2 and parts.count == 1
    # jaccard = 1/(2+1-1) = 0.5 ; reward = 0.8 + 0.1 = 0.9
    assert parts.reward == pytest.approx(0.9)


def test_rewards_are_deterministic():
    mem = "\n".join(HISTORY)
    a = [extractor_reward(mem, EVIDENCE).to_dict() for _ in range(3)]
    assert a[0] == a[1] == a[2]
    r1 = match_units(HISTORY, EVIDENCE)
    r2 = match_units(list(HISTORY), list(EVIDENCE))
    assert r1 == r2


# ------------------------------------------------------------------ embedding matcher


class BagOfWords:
    """Deterministic toy embedder: counts over a fixed vocabulary (not normalised, on purpose)."""

    name = "bow"
    vocab = ["jazz", "rock", "nurse", "boston", "swim"]

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), len(self.vocab)), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                if w in self.vocab:
                    out[i, self.vocab.index(w)] += 1
        return out


def test_embedding_matcher_cosine_and_default_tau():
    emb = BagOfWords()
    m = resolve_matcher(emb)
    assert isinstance(m, EmbeddingMatcher) and m.default_tau == EMBEDDING_TAU == 0.6
    # "jazz rock" = (1,1,0,0,0), "jazz" = (1,0,0,0,0): cos = 1/sqrt(2) ≈ 0.7071 >= 0.6 -> match
    # "nurse" vs "jazz" = 0 ; zero vector "hello" -> cos 0
    sim = m.similarity_matrix(["jazz rock", "nurse", "hello"], ["jazz"])
    assert sim[:, 0] == pytest.approx([2 ** -0.5, 0.0, 0.0])
    parts = extractor_reward(["jazz rock", "nurse"], ["jazz", "boston nurse"], matcher=m)
    # jazz rock-jazz 0.707 ; nurse-"boston nurse" 0.707 -> c = 2, |M| = 2, |E| = 2 -> 1.0
    assert parts.count == 2 and parts.reward == 1.0
    # cached: encoding the same texts again does not call the embedder
    calls = emb.calls
    m.similarity_matrix(["jazz rock", "nurse"], ["jazz", "boston nurse"])
    assert emb.calls == calls


def test_embedding_matcher_by_name_uses_comam_embed():
    embed = pytest.importorskip("comam_env.embed")
    try:
        embed.get_embedder("hashing")
    except Exception as exc:  # the embed module is written in parallel
        pytest.skip(f"hashing embedder not available: {exc}")
    parts = extractor_reward("\n".join(EVIDENCE), EVIDENCE, matcher="embedding:hashing")
    assert parts.recall == 1.0 and parts.jaccard == 1.0


# ------------------------------------------------------------------ properties

WORD_POOLS = [[f"w{j}x{k}" for k in range(6)] for j in range(4)]
ALL_WORDS = [w for pool in WORD_POOLS for w in pool]


@st.composite
def memory_and_evidence(draw):
    n_ev = draw(st.integers(1, 4))
    # evidence j uses only words of pool j, so evidence items share no content token
    evidence = [" ".join(draw(st.lists(st.sampled_from(WORD_POOLS[j]), min_size=1, max_size=5)))
                for j in range(n_ev)]
    units = draw(st.lists(st.lists(st.sampled_from(ALL_WORDS), min_size=0, max_size=6).map(" ".join),
                          max_size=8))
    return units, evidence


@settings(max_examples=150, deadline=None)
@given(memory_and_evidence(), st.floats(0, 1))
def test_property_reward_in_unit_interval_and_consistent(data, w):
    units, evidence = data
    p = coverage_reward(units, evidence, w)
    assert 0.0 <= p.recall <= 1.0 and 0.0 <= p.jaccard <= 1.0
    assert -1e-12 <= p.reward <= 1.0 + 1e-12
    assert p.count <= min(p.n_units, p.n_evidence)
    assert p.reward == pytest.approx(w * p.count / p.n_evidence + (1 - w) * p.count / (p.n_units + p.n_evidence - p.count))


@settings(max_examples=150, deadline=None)
@given(memory_and_evidence())
def test_property_adding_an_unmatched_evidence_line_raises_recall(data):
    units, evidence = data
    before = extractor_reward(units, evidence)
    missing = [j for j in range(len(evidence)) if j not in before.matched_evidence]
    if not missing:
        return
    after = extractor_reward(units + [evidence[missing[0]]], evidence)
    assert after.count == before.count + 1
    assert after.recall == pytest.approx(before.recall + 1 / len(evidence))


# ------------------------------------------------------------------ tags and options


def test_extract_tag():
    assert extract_tag("<information>a</information> x <information> b </information>", "information") == "b"
    assert extract_tag("pre <final_answer>(c) because", "final_answer") == "(c) because"  # no closing tag
    assert extract_tag("<FINAL_ANSWER>(d)</FINAL_ANSWER>", "final_answer") == "(d)"
    assert extract_tag("no tags here", "final_answer") is None
    assert extract_tag("only a close </final_answer>", "final_answer") is None
    assert extract_tag("", "x") is None


@pytest.mark.parametrize(
    "response, expected",
    [
        ("<final_answer>(c)</final_answer>", "c"),
        ("<final_answer>(C)</final_answer>", "c"),  # upper case
        ("The answer is (b).", "b"),  # no tag: whole response
        ("(a) or (b)", None),  # two letters, nothing decides
        ("Between (a) and (b), I pick <final_answer>(b)</final_answer>", "b"),  # tail decides
        ("<final_answer>(a)</final_answer> no wait <final_answer>(d)</final_answer>", "d"),  # last tag
        ("<final_answer>b</final_answer>", "b"),  # bare letter
        ("Answer: B", "b"),  # bare upper-case letter
        ("I'd pick a", "a"),  # the d of I'd is not a bare letter; the article "a" is
        ("I choose (d). <final_answer>the second one</final_answer>", "d"),  # tail empty -> whole
        ("<final_answer>(a) and (b)</final_answer>", None),
        ("<final_answer>(b) because it fits", "b"),  # unclosed tag
        ("Because dogs bark", None),  # letters only inside words
        ("(e)", None),  # beyond n_options = 4
        ("", None),
    ],
)
def test_parse_option(response, expected):
    assert parse_option(response) == expected


def test_parse_option_more_options():
    assert parse_option("(e)", n_options=5) == "e"
    with pytest.raises(ValueError):
        parse_option("(a)", n_options=0)


def test_is_option_correct_follows_personamem_exactly():
    # letters inside the tag decide when unique
    r = "Option (b) seems plausible but <final_answer>(c)</final_answer>"
    assert is_option_correct(r, "c") and is_option_correct(r, "(c)")
    assert not is_option_correct(r, "b")  # whole response has {b, c}
    # PersonaMem corner: bare letter in tail {a}, parenthesised letter in body {b}: both accepted
    r = "(b) is wrong. <final_answer>a</final_answer>"
    assert is_option_correct(r, "a") and is_option_correct(r, "b")
    assert parse_option(r) == "a"
    assert not is_option_correct("(a) or (b)", "a")


# ------------------------------------------------------------------ token F1


@pytest.mark.parametrize(
    "pred, gold, f1",
    [
        # pred -> [cat, sat] (2); gold -> [cat, sat, on, mat] (4); common 2: P=1, R=.5, F1=2/3
        ("The cat sat", "cat sat on the mat", 2 / 3),
        ("7 May 2023", "7 May, 2023", 1.0),  # punctuation removed
        ("dog dog cat", "dog cat cat", 2 / 3),  # counts: common dog 1 + cat 1 = 2; P = R = 2/3
        ("blue", "red", 0.0),
        ("", "", 1.0),
        ("the", "a", 1.0),  # both empty after article removal
        ("", "red", 0.0),
    ],
)
def test_token_f1(pred, gold, f1):
    assert token_f1(pred, gold) == pytest.approx(f1)


# ------------------------------------------------------------------ answer reward


def _mcq(answer="c"):
    return Question("q1", "h1", "recall_user_shared_facts", "x", "Which?", ("w", "x", "y", "z"), answer, None, 5)


def _open(answer="7 May 2023", category=2):
    return Question("q2", "h1", "locomo_temporal", str(category), "When?", (), answer, (1,), 5,
                    meta={"category": category})


def test_answer_reward_mcq():
    q = _mcq("c")
    assert answer_reward("<final_answer>(c)</final_answer>", q) == AnswerParts(1.0, "c", "mcq")
    assert answer_reward("<final_answer>(a)</final_answer>", q) == AnswerParts(0.0, "a", "mcq")
    assert answer_reward("(a) or (c)", q) == AnswerParts(0.0, None, "mcq")
    assert answer_reward(None, q).reward == 0.0
    assert answer_reward(b"<final_answer>(c)\xff", q).reward == 1.0  # bytes decoded leniently
    assert answer_reward("(c)", q).to_dict() == {"reward": 1.0, "parsed": "c", "kind": "mcq"}


def test_answer_reward_open_uses_final_answer_text():
    q = _open("7 May 2023")
    parts = answer_reward("<information>they met</information><final_answer>on 7 May 2023</final_answer>", q)
    # pred [on, 7, may, 2023] vs gold [7, may, 2023]: common 3, P = 3/4, R = 1 -> F1 = 6/7
    assert parts.kind == "open" and parts.parsed == "on 7 May 2023"
    assert parts.reward == pytest.approx(6 / 7)
    assert answer_reward("7 May 2023", q).reward == 1.0  # no tag: whole response


def test_answer_reward_adversarial():
    q = _open("a red bicycle", category=5)
    assert answer_reward("<final_answer>This is not mentioned in the conversation.</final_answer>", q) == AnswerParts(
        1.0, "This is not mentioned in the conversation.", "adversarial")
    assert answer_reward("No information available.", q).reward == 1.0
    assert answer_reward("It CAN'T be determined", q).reward == 1.0
    assert answer_reward("a red bicycle", q).reward == 0.0  # the trap answer
    assert answer_reward("She knows it well", q).reward == 0.0  # "known" not inside other words
    assert all(is_abstention(p) for p in ABSTENTION_PHRASES)
    assert not is_abstention("unknowingly")


def test_non_utf8_safe_text_does_not_crash_embedding_matcher():
    seen = []

    class Strict(BagOfWords):
        def encode(self, texts):
            for t in texts:
                t.encode("utf-8")  # raises on lone surrogates, like real tokenizers
            seen.extend(texts)
            return super().encode(texts)

    parts = extractor_reward(["jazz \udcff rock"], ["jazz rock"], matcher=Strict())
    assert parts.count == 1 and "jazz ? rock" in seen


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 6), st.integers(0, 6), st.data())
def test_property_greedy_matching_is_one_to_one_and_maximal(n_u, n_e, data):
    # similarities on a coarse grid so ties are frequent
    sim = np.array(data.draw(st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
                                                min_size=n_e, max_size=n_e), min_size=n_u, max_size=n_u)),
                   dtype=float).reshape(n_u, n_e)
    r = match_units([f"u{i}" for i in range(n_u)], [f"e{j}" for j in range(n_e)],
                    matcher=FixedMatcher(sim), tau=0.5)
    us = [u for u, _, _ in r.pairs]
    es = [e for _, e, _ in r.pairs]
    assert len(set(us)) == len(us) and len(set(es)) == len(es)  # one-to-one
    assert all(s >= 0.5 and sim[u, e] == s for u, e, s in r.pairs)
    assert [s for _, _, s in r.pairs] == sorted((s for _, _, s in r.pairs), reverse=True)  # taken best-first
    # maximal: no pair above the threshold has both ends free
    free_u = set(range(n_u)) - set(us)
    free_e = set(range(n_e)) - set(es)
    assert not any(sim[u, e] >= 0.5 for u in free_u for e in free_e)


# ------------------------------------------------- caches and sparse paths = definition

from comam_env import matching as _rw  # noqa: E402  (the caches and machinery behind the rewards)
from comam_env.text import content_tokens, split_units  # noqa: E402

_WORDS = ["a", "the", "I", "dog", "Dog", "max", "golden", "retriever", "jazz", "rock", "not", "don't",
          "it's", "café", "42", "x_y", "hello", "user", "named", "adopted"]
_SEPS = [" ", "  ", ", ", ". ", "! ", "\t", " (", ") ", "-", "'", "’"]


@st.composite
def _chat_text(draw, max_words=12):
    n = draw(st.integers(0, max_words))
    out = []
    for _ in range(n):
        out.append(draw(st.sampled_from(_WORDS)))
        out.append(draw(st.sampled_from(_SEPS)))
    return "".join(out)


def _spec_similarity(units, evidence):
    """docs/design.md §3 token recall written directly from comam_env.text.content_tokens (no caches)."""
    sim = np.zeros((len(units), len(evidence)))
    for i, u in enumerate(units):
        cu = content_tokens(u)
        for j, e in enumerate(evidence):
            ce = content_tokens(e)
            sim[i, j] = len(cu & ce) / len(ce) if ce else 0.0
    return sim


@settings(max_examples=150, deadline=None)
@given(st.lists(_chat_text(), max_size=8), st.lists(_chat_text(), min_size=1, max_size=5),
       st.sampled_from([0.5, 0.25, 1.0, 0.34, 1e-9, 0.0, -1.0]), st.booleans())
def test_property_cached_token_recall_equals_fresh_definition(units, evidence, tau, clear):
    if clear:  # cold caches and warm caches must agree with the definition alike
        _rw._cached_content_tokens.cache_clear()
        _rw._evidence_index.cache_clear()
    spec = _spec_similarity(units, evidence)
    for _ in range(2):  # second round: everything served from the caches
        sim = TokenRecallMatcher().similarity_matrix(units, evidence)
        assert sim.dtype == np.float64 and np.array_equal(sim, spec)  # bit-identical
        kept = [u.strip() for u in units if u.strip()]
        got = match_units(kept, evidence, tau=tau)
        want = _rw.greedy_match(_spec_similarity(kept, evidence), tau) if kept else ()
        assert got.pairs == want  # same pairs, same order, same float values


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300), st.booleans())
def test_property_cached_content_tokens_equal_text_content_tokens(text, long):
    if long:  # above the cache's length limit: the uncached path
        text = text + " filler" * (_rw._CACHE_MAX_CHARS // 7 + 1)
    assert _rw._content(text) == content_tokens(text)
    assert _rw._content(text) == content_tokens(text)  # cached


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_chat_text(max_words=70), st.text(max_size=200)), max_size=6),
       st.sampled_from(["\n", "\r\n", "\n\n", "\u2028"]))
def test_property_fast_unit_split_equals_split_units(lines, sep):
    text = sep.join(lines)
    assert _rw._split_units(text) == split_units(text)


@pytest.mark.parametrize("row_limit", [512, 3, 0])
def test_sparse_match_on_real_sized_memory_equals_dense(synthetic_32k, monkeypatch, row_limit):
    monkeypatch.setattr(_rw, "_ROWS_PER_EVIDENCE", row_limit)  # full row memo: rows computed, not kept
    _rw.clear_caches()
    ds = synthetic_32k
    q = next(q for q in ds.questions if q.evidence and len(q.evidence) >= 2)
    h = ds.history_for(q)
    ev = list(ds.evidence_texts(q))
    units = _rw.to_units(h.render(range(0, min(len(h), 400))))
    dense = _rw.greedy_match(_spec_similarity(units, ev), 0.5)
    for _ in range(2):
        sparse = match_units(units, ev)
        assert sparse.pairs == dense and sparse.count >= 1
        assert np.array_equal(TokenRecallMatcher().similarity_matrix(units, ev), _spec_similarity(units, ev))
    assert len(_rw._evidence_index(tuple(ev)).rows) <= row_limit


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["(a)", "(b)", "(C)", "b", "d.", "I'd", "<final_answer>", "</final_answer>",
                                 "answer", " ", "\n", "a", "(e)"]), max_size=12).map("".join),
       st.sampled_from(["a", "b", "c", "d"]), st.integers(2, 4))
def test_property_answer_reward_equals_parse_and_correctness_rules(response, gold, n):
    if ord(gold) - ord("a") >= n:
        gold = "a"
    q = Question("q", "h", "recall_user_shared_facts", "x", "?", tuple("xyzw"[:n]), gold, None, 0, "p", "t")
    got = answer_reward(response, q)
    assert got.parsed == parse_option(response, n)
    assert got.reward == (1.0 if is_option_correct(response, gold, n) else 0.0)


def test_score_answer_is_the_answer_reward():
    """comam_env.score_answer is the one answer rule: the env's eq. 12 reward, as a float."""
    import comam_env
    from comam_env.data.schema import Question
    from comam_env.rewards import answer_reward

    q = Question(question_id="q", history_id="h", qtype="x", raw_type="x", query="Which?",
                 options=("red", "blue", "green", "gold"), answer="b", evidence=None, end_index=0)
    assert comam_env.score_answer(q, "<final_answer>(b)</final_answer>") == 1.0
    assert comam_env.score_answer(q, "(a) or (b)") == 0.0
    for r in ("(b)", "b", "(c)", "", None):
        assert comam_env.score_answer(q, r) == answer_reward(r, q).reward
