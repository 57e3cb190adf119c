"""Embedders and the on-disk embedding cache (comam_env/embed.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from comam_env.data.schema import Dataset, History, Question
from comam_env.embed import (
    EmbeddingCache,
    HashingEmbedder,
    embed_dataset,
    embedding_cache_path,
    get_embedder,
    message_text,
)

TEXTS = ["I love hiking in the Alps every summer", "Hiking in the Alps is what I love", "The stock market fell sharply today", ""]


def _dataset(extra: str = "") -> Dataset:
    h = History(
        history_id="h0",
        roles=("user", "assistant", "user"),
        contents=("I adopted a cat named Miso.", "That is lovely!", "I now prefer tea over coffee." + extra),
        session_starts=(0,),
    )
    q = Question(
        question_id="q0", history_id="h0", qtype="recall_user_shared_facts", raw_type="x",
        query="What is my cat called?", options=("Miso", "Rex", "Tom", "Kit"), answer="a",
        evidence=(0,), end_index=3,
    )
    return Dataset(name="tiny", histories={"h0": h}, questions=(q,))


def test_hashing_similar_texts_are_close_and_rows_normalised():
    e = get_embedder("hashing")
    m = e.encode(TEXTS)
    assert m.shape == (4, 256) and m.dtype == np.float32
    assert np.allclose(np.linalg.norm(m[:3], axis=1), 1.0, atol=1e-5)
    assert not m[3].any(), "empty text embeds to zeros"
    assert m[0] @ m[1] > 0.6
    assert abs(m[0] @ m[2]) < 0.2


def test_hashing_is_deterministic_across_processes():
    here = HashingEmbedder().encode(TEXTS[:3])
    code = (
        "import numpy as np, sys; from comam_env.embed import HashingEmbedder;"
        f"sys.stdout.write(HashingEmbedder().encode({TEXTS[:3]!r}).tobytes().hex())"
    )
    outs = []
    for seed in ("1", "12345"):  # different PYTHONHASHSEEDs: the salted hash() must not leak in
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": ""})
        outs.append(res.stdout)
    assert outs[0] == outs[1] == here.tobytes().hex()


def test_hashing_name_depends_on_config():
    assert HashingEmbedder().name == "hashing"
    assert HashingEmbedder(dim=64).name != "hashing"
    with pytest.raises(ValueError):
        get_embedder("nope")


def test_cache_hits_misses_and_roundtrip(tmp_path):
    path = tmp_path / "c.npz"
    c = EmbeddingCache("hashing", path)
    assert c.add(TEXTS[:2] + TEXTS[:1]) == 2  # deduplicated
    v = c.lookup([TEXTS[1], TEXTS[0]])
    assert c.hits == 2 and c.misses == 0
    c.lookup([TEXTS[2]])
    assert c.misses == 1 and len(c) == 3
    np.testing.assert_array_equal(v[0], HashingEmbedder().encode([TEXTS[1]])[0])
    c.save()
    c2 = EmbeddingCache("hashing", path)
    assert c2.loaded_from_disk and len(c2) == 3
    np.testing.assert_array_equal(c2.lookup(TEXTS[:3]), c.lookup(TEXTS[:3]))
    assert c2.misses == 0


def test_cache_refuses_other_model(tmp_path):
    path = tmp_path / "c.npz"
    EmbeddingCache("hashing", path).add(["x"]) or None
    c = EmbeddingCache("hashing", path)
    c.add(["hello"])
    c.save()
    with pytest.raises(ValueError, match="model"):
        EmbeddingCache(HashingEmbedder(dim=64), path)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="c.npz"):
        EmbeddingCache("hashing", path)


class _CountingEmbedder(HashingEmbedder):
    calls = 0

    def encode(self, texts):
        type(self).calls += len(texts)
        return super().encode(texts)


def test_embed_dataset_persists_reuses_and_invalidates(tmp_path):
    ds = _dataset()
    emb = _CountingEmbedder()
    c1 = embed_dataset(ds, emb, cache_dir=tmp_path, progress=False)
    first = _CountingEmbedder.calls
    assert first == 3 + 1 + 4  # messages + query + options
    p = embedding_cache_path(ds, emb, tmp_path)
    assert p.exists() and p.with_suffix(".json").exists()
    assert embed_dataset(ds, emb, cache_dir=tmp_path, progress=False) is c1, "same dataset object: in-memory reuse"
    c2 = embed_dataset(ds, emb, cache_dir=tmp_path, progress=False, reuse=False)
    assert _CountingEmbedder.calls == first, "second call must embed nothing"
    assert c2.loaded_from_disk
    t = message_text("user", "I adopted a cat named Miso.")
    np.testing.assert_array_equal(c1.get(t), c2.get(t))
    # Changing the content changes the key: a new file, the changed text embedded again.
    changed = _dataset(extra=" Really.")
    p2 = embedding_cache_path(changed, emb, tmp_path)
    assert p2 != p
    embed_dataset(changed, emb, cache_dir=tmp_path, progress=False)
    assert _CountingEmbedder.calls == first + len(c1)


@pytest.mark.slow
def test_minilm_embedder_offline():
    e = get_embedder("minilm")
    m = e.encode(TEXTS[:3])
    assert m.shape == (3, 384)
    assert m[0] @ m[1] > m[0] @ m[2]
