"""Hidden tracks: secret-seeded synthetic question sets, and signatures that make their scores checkable.

A hidden track (:data:`HIDDEN_TRACKS`) is a synthetic PersonaMem-style question
set generated from a **secret** held in the environment variable
``COMAM_HIDDEN_SEED`` (:func:`read_secret` refuses a missing one, or one shorter
than :data:`MIN_SECRET_CHARS` characters). This module holds everything that
needs the secret but no agent code: generating the split
(:func:`hidden_split`), the redacted copy agents see, and the signature that
``run-agent`` puts in an entry's ``score.json`` (:func:`sign_entry`,
:func:`check_signature`). Running an agent is :mod:`leaderboard.run_agent`'s
job — the only leaderboard module that imports policies.

Derivation (HMAC-SHA256 keyed by the secret, so nothing about the secret can
be recovered from the outputs without brute-forcing it — hence the minimum
length): the generator seed (63 bits), the validation split seed, a key that
turns every question id into an opaque ``h-<16 hex>`` id, and the signing key.
Generated ids (``syn<seed>-…``), the dataset's generator metadata and its
temporary folder would reveal the seed, so they never leave this module: agents
receive a *redacted* copy of the dataset (opaque ids, gold answers replaced by
the placeholder ``"a"``, no gold evidence, no gold profiles, empty metadata).

Why a signature: a ``hidden-run`` entry's questions are secret, so without the
secret nobody can recompute its score; ``score.json`` would be the entrant's
word. ``run-agent`` therefore signs ``HMAC(key(secret), canonical JSON of
metadata + sha256(predictions.jsonl) + score)``. With the secret set,
``validate`` checks the signature, regenerates the split (with the generator
knobs and question limit the entry records) and checks every question id, and
``score`` recomputes the score from the predictions; without it the stored
score is shown as *unverified* and never ranked (``leaderboard/README.md``,
*Hidden tracks and the trust model*).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
from typing import Any, Mapping

#: Environment variable holding the secret.
SECRET_ENV = "COMAM_HIDDEN_SEED"
#: Shortest secret accepted (short secrets can be brute-forced from the opaque ids).
MIN_SECRET_CHARS = 16
#: ``score.json`` field holding the signature, and its algorithm name.
SIGNATURE_FIELD = "signature"
SIGNATURE_ALGORITHM = "HMAC-SHA256"

#: hidden track id -> generator size, public env id the policies run on, evaluated split.
HIDDEN_TRACKS: dict[str, dict[str, str]] = {
    "synthetic-32k-hidden": {"size": "32k", "env": "synthetic-32k", "split": "validation"},
    "synthetic-128k-hidden": {"size": "128k", "env": "synthetic-128k", "split": "validation"},
}

#: generator knobs an entry may record (they only change the mix of the questions, never their
#: number beyond the track's default); ``size`` and ``seed`` come from the track and the secret.
KNOB_BOUNDS: dict[str, tuple[float, float]] = {
    "n_personas": (1, 0),  # upper bound: the track's default persona count (filled in by check_knobs)
    "topics_per_persona": (1, 8), "updates_per_topic": (0, 3), "decoys_per_fact": (0, 5),
    "paraphrase": (0, 1), "distractor_closeness": (0, 1), "assistant_mentions": (0, 1),
    "mid_history_questions": (0, 1),
}


class HiddenTrackError(ValueError):
    """A hidden-track run cannot proceed (missing secret, bad entry, unknown track)."""


@dataclasses.dataclass(frozen=True)
class HiddenSplit:
    """A generated hidden split: the scoring dataset (gold) and the redacted copy agents see."""

    track: str
    gold: Any            # Dataset with opaque ids and gold answers (never given to the agent)
    redacted: Any        # Dataset with opaque ids, placeholder answers, no evidence/profiles
    question_ids: tuple[str, ...]
    generator_seed: int  # secret-derived; never written anywhere


def _derive(secret: str, purpose: str, bits: int) -> int:
    digest = hmac.new(secret.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - bits)


def read_secret(env_var: str = SECRET_ENV, secret: str | None = None) -> str:
    """The secret (argument, else the environment variable); refuses missing or short ones."""
    value = secret if secret is not None else os.environ.get(env_var)
    if not value:
        raise HiddenTrackError(
            f"refusing to run a hidden track: set the environment variable {env_var} to a secret of at least "
            f"{MIN_SECRET_CHARS} characters (e.g. `export {env_var}=$(python -c "
            f"'import secrets; print(secrets.token_hex(16))')`)")
    if len(value) < MIN_SECRET_CHARS:
        raise HiddenTrackError(f"{env_var} is too short ({len(value)} characters; at least {MIN_SECRET_CHARS}): "
                               "a short secret can be recovered from the opaque question ids")
    return value


def secret_from_env(env_var: str = SECRET_ENV) -> str | None:
    """The secret when ``env_var`` is set (refusing a short one), else ``None``."""
    return read_secret(env_var) if os.environ.get(env_var) else None


def track_spec(track: str) -> dict[str, str]:
    """The generator size, public env id and evaluated split of a hidden track."""
    try:
        return HIDDEN_TRACKS[track]
    except KeyError:
        raise HiddenTrackError(f"unknown hidden track {track!r}; known: {', '.join(HIDDEN_TRACKS)}") from None


def check_knobs(track: str, knobs: Any) -> list[str]:
    """Problems with generator knobs recorded in (or passed for) a hidden-track entry; ``[]`` if fine.

    Only :data:`KNOB_BOUNDS` are allowed, as plain numbers within bounds, so that checking a
    submitted entry can never be made to generate a bigger dataset than the track's own.
    """
    from comam_env.data.synthetic import DEFAULT_PERSONAS

    if not isinstance(knobs, Mapping):
        return [f"must be an object of generator knobs, got {type(knobs).__name__}"]
    problems = []
    for key, value in knobs.items():
        if key not in KNOB_BOUNDS:
            problems.append(f"unknown generator knob {key!r} (allowed: {', '.join(KNOB_BOUNDS)})")
            continue
        lo, hi = KNOB_BOUNDS[key]
        if key == "n_personas":
            hi = DEFAULT_PERSONAS[track_spec(track)["size"]]
        integral = isinstance(lo, int) and isinstance(hi, int)
        ok_type = isinstance(value, int) if integral else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not lo <= value <= hi:
            problems.append(f"generator knob {key!r} must be {'an integer' if integral else 'a number'} in "
                            f"[{lo}, {hi}], got {value!r}")
    return problems


def hidden_split(track: str, secret: str, **knobs: Any) -> HiddenSplit:
    """Generate the hidden dataset of ``track`` from ``secret`` (deterministic for a secret).

    ``knobs`` are :data:`KNOB_BOUNDS` fields of :class:`comam_env.data.synthetic.SyntheticConfig`
    (tests use ``n_personas=2`` to stay small). Nothing is cached on disk (the cache folder
    name would hold the seed).
    """
    from comam_env.data.schema import Dataset
    from comam_env.data.splits import split_question_ids
    from comam_env.data.synthetic import load_synthetic

    spec = track_spec(track)
    problems = check_knobs(track, knobs)
    if problems:
        raise HiddenTrackError("; ".join(problems))
    gen_seed = _derive(secret, f"generator:{track}", 63)
    split_seed = _derive(secret, f"split:{track}", 32)
    id_key = hmac.new(secret.encode("utf-8"), f"ids:{track}".encode(), hashlib.sha256).digest()
    raw = load_synthetic(spec["size"], seed=gen_seed, cache=False, **knobs)

    def opaque(qid: str) -> str:
        return "h-" + hmac.new(id_key, qid.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    gold_qs = tuple(dataclasses.replace(q, question_id=opaque(q.question_id)) for q in raw.questions)
    gold = Dataset(name=track, histories=raw.histories, questions=gold_qs, profiles=raw.profiles,
                   source=f"hidden:{track}", meta={"track": track})
    hidden_qs = tuple(dataclasses.replace(q, answer="a" if q.options else "", evidence=None) for q in gold_qs)
    redacted = Dataset(name=track, histories=raw.histories, questions=hidden_qs, profiles={},
                       source=f"hidden:{track}", meta={"track": track})
    ids = tuple(split_question_ids(gold, spec["split"], seed=split_seed))
    return HiddenSplit(track=track, gold=gold, redacted=redacted, question_ids=ids, generator_seed=gen_seed)


def entry_question_ids(split: HiddenSplit, limit: int | None) -> list[str]:
    """The questions a run covers: the split's, or its first ``limit`` (``--limit`` smoke runs)."""
    return list(split.question_ids[:limit] if limit else split.question_ids)


_SPLITS: dict[tuple, HiddenSplit] = {}


def split_for_entry(metadata: Mapping[str, Any], secret: str) -> HiddenSplit:
    """The hidden split an entry was run on (its track and recorded generator knobs); memoised.

    The cache key holds a digest of the secret, never the secret itself.
    """
    track = metadata["track"]
    knobs = dict(metadata.get("generator_knobs") or {})
    key = (hashlib.sha256(secret.encode("utf-8")).hexdigest(), track, json.dumps(knobs, sort_keys=True))
    if key not in _SPLITS:
        _SPLITS[key] = hidden_split(track, secret, **knobs)
    return _SPLITS[key]


# --------------------------------------------------------------------------- signatures


def _signing_key(secret: str, track: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), f"sign:{track}".encode(), hashlib.sha256).digest()


def _canonical(metadata: Mapping[str, Any], predictions_sha256: str, score: Mapping[str, Any]) -> bytes:
    # the folder name ("entry") may change when an entry is moved; everything else is signed
    body = {k: v for k, v in score.items() if k not in ("entry", SIGNATURE_FIELD)}
    doc = {"metadata": metadata, "predictions_sha256": predictions_sha256, "score": body}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def sign_entry(secret: str, metadata: Mapping[str, Any], predictions_bytes: bytes, score: Mapping[str, Any]) -> dict:
    """The ``signature`` object ``run-agent`` stores in ``score.json``."""
    digest = hashlib.sha256(predictions_bytes).hexdigest()
    mac = hmac.new(_signing_key(secret, metadata["track"]), _canonical(metadata, digest, score), hashlib.sha256)
    return {"algorithm": SIGNATURE_ALGORITHM, "predictions_sha256": digest, "mac": mac.hexdigest()}


def check_signature(secret: str, metadata: Mapping[str, Any], predictions_bytes: bytes,
                    score: Mapping[str, Any]) -> str | None:
    """Why the entry's signature does not verify with ``secret``, or ``None`` when it does."""
    sig = score.get(SIGNATURE_FIELD)
    if not isinstance(sig, Mapping):
        return ("no signature: this score was not written by `comam-env leaderboard run-agent` with the "
                "current secret")
    if sig.get("algorithm") != SIGNATURE_ALGORITHM:
        return f"unknown signature algorithm {sig.get('algorithm')!r} (expected {SIGNATURE_ALGORITHM!r})"
    digest = hashlib.sha256(predictions_bytes).hexdigest()
    if sig.get("predictions_sha256") != digest:
        return "predictions.jsonl is not the file that was signed (sha256 differs)"
    want = hmac.new(_signing_key(secret, metadata["track"]), _canonical(metadata, digest, score),
                    hashlib.sha256).hexdigest()
    if not isinstance(sig.get("mac"), str) or not hmac.compare_digest(sig["mac"], want):
        return ("signature does not match: metadata.json or score.json changed after signing, or the entry "
                "was signed with another secret")
    return None
