"""Profile judges: the profiler's reward ``r_prof = V(M_c, H) ∈ [0, 1]`` (eq. 10).

A judge is any object with

    score(profile: str, *, history, gold_profile) -> JudgeResult

where ``history`` is the conversation the profile should describe (a rendered
text of ``Role: content`` lines, a :class:`~comam_env.data.schema.History`, or a
list of message texts) and ``gold_profile`` the gold statements when the data has
them (else ``None``). Scores are deterministic for the same inputs.

* :class:`GoldProfileJudge` (``"gold"``; synthetic data, LoCoMo observations):
  the profile is split into units (:func:`comam_env.rewards.to_units`) and matched
  one-to-one against the gold statements with the reward matcher
  (:func:`comam_env.rewards.match_units`, token recall by default). With ``c``
  matches, precision ``P = c/|units|`` and recall ``R = c/|gold|``, the score is
  the F-beta ``(1+β²)·P·R / (β²·P + R)`` with ``β = 1`` (F1: padding and omission cost
  alike — a profile is a compact abstraction, and the retriever reads it under a memory
  budget; until session 5 the default was the recall-weighted β = 2, which taught the
  selection profiler to keep about half of M_f and made it causally inert,
  docs/credit_ablation.md "Role interventions").
  The gold statements themselves score 1; an empty profile scores 0. The gold statements
  are what the history H the profiler saw supports
  (:meth:`comam_env.data.schema.Dataset.profile_for` with H's spans: statements whose
  evidence lies in H, preference updates resolved as of the end of H), so the reward is
  attainable in every episode. ``"gold:<beta>"`` sets β: it is the profiler's difficulty
  knob — the larger β, the more a verbose profile (e.g. all of M_f) scores, while under
  the selection view's memory budget a verbose profile crowds the query-relevant fine
  memory out of what the retriever sees, so the local reward rises where the answer does
  not.
* :class:`EmbeddingJudge` (``"embedding"``; offline fallback for real data):
  with cosine similarities between profile units and the user's messages,

  - grounding ``g`` = mean over profile units of the best cosine to a user message
    (are the statements supported by the history?),
  - coverage ``k`` = mean over user messages of the best cosine to a profile unit
    (is the history represented?),
  - concision ``z = min(1, ρ* / ρ)`` with ``ρ`` = tokens(profile) / tokens(user
    messages) and target ratio ``ρ* = 0.2``,

  score ``= z · (g + k) / 2`` (cosines clipped to [0, 1]). Copying every user
  message gives ``g = k = 1`` but ``ρ ≥ 1``, so at most ``ρ*`` = 0.2, while a
  profile a fifth of the history long or shorter is not penalised. Limitation: the
  judge measures grounding and coverage, not abstraction — a few verbatim
  messages can score like a good summary; use the LLM judge for that.
  The user messages are those with role ``user`` (``User:`` lines of a rendered
  text; every line when no line has a role prefix); at most
  ``max_history_messages`` evenly spaced ones are embedded.
* :class:`LLMJudge` (``"llm"``; the paper's choice): a frozen causal LM from
  ``transformers`` reads a rubric prompt (scenario, preference, user profile) and
  answers ``scenario: <0-10>`` / ``preference: <0-10>`` / ``profile: <0-10>``;
  greedy decoding. The score is the sum of the three numbers over 30. Parsing
  (:func:`parse_rubric_scores`): the last ``<rubric>: <number>`` for each rubric
  (``8/10`` and ``8.5`` accepted, values clipped to [0, 10]; a missing rubric
  counts 0 and is listed in ``parts["missing"]``); when no rubric is named and
  the reply holds exactly three numbers in [0, 10], they are taken in order;
  otherwise the reply is unparsable: score ``fallback_score`` (0) and
  ``parts["parse_failed"] = True``.

:func:`get_judge` builds a judge from a name (``"gold"``, ``"embedding"``,
``"llm"``, ``"auto"``, also ``"embedding:<embedder>"`` and ``"llm:<model>"``) or
returns an object that already has ``score``. ``"auto"`` uses the gold judge
when a gold profile is given and the embedding judge otherwise.

Heavy libraries (torch, transformers, sentence-transformers) are imported only
when a judge first needs them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from comam_env.matching import EmbeddingMatcher, _utf8_safe, match_units, to_units
from comam_env.text import estimate_tokens

__all__ = [
    "JudgeResult",
    "ProfileJudge",
    "GoldProfileJudge",
    "EmbeddingJudge",
    "LLMJudge",
    "AutoJudge",
    "RUBRICS",
    "JUDGE_NAMES",
    "get_judge",
    "judge_reads_history",
    "history_user_messages",
    "parse_rubric_scores",
    "build_rubric_prompt",
]

#: Rubric names of the LLM judge, in the order the reply lists them.
RUBRICS: tuple[str, ...] = ("scenario", "preference", "profile")
#: Judge names :func:`get_judge` accepts.
JUDGE_NAMES: tuple[str, ...] = ("gold", "embedding", "llm", "auto")


@dataclass(frozen=True)
class JudgeResult:
    """A judge's verdict.

    Attributes:
        score: in [0, 1]; the profiler's reward.
        parts: how the score was obtained (judge name, sub-scores, flags).
    """

    score: float
    parts: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, **dict(self.parts)}


@runtime_checkable
class ProfileJudge(Protocol):
    """Scores a profile against the history it should describe."""

    def score(self, profile: str, *, history: Any = None,
              gold_profile: Sequence[str] | None = None) -> JudgeResult:
        ...


# ----------------------------------------------------------------- history input

_ROLE_LINE = re.compile(r"^\s*(?:\[\d+\]\s*)?(user|assistant|system)\s*:\s*", re.IGNORECASE)


def history_user_messages(history: Any) -> list[str]:
    """The user's messages of ``history``.

    * a :class:`~comam_env.data.schema.History`: contents whose role is ``user``;
    * a text: the ``User:`` lines (prefix and an optional ``[i]`` index removed,
      as :meth:`History.render` writes them); when no line has a role prefix,
      every non-empty line;
    * a list of strings: taken as the messages;
    * ``None``: no messages.
    """
    if history is None:
        return []
    if hasattr(history, "roles") and hasattr(history, "contents"):
        return [c for r, c in zip(history.roles, history.contents) if r == "user" and c.strip()]
    if isinstance(history, str):
        lines = [ln for ln in history.splitlines() if ln.strip()]
        user, any_role = [], False
        for ln in lines:
            m = _ROLE_LINE.match(ln)
            if m:
                any_role = True
                if m.group(1).lower() == "user":
                    text = ln[m.end():].strip()
                    if text:
                        user.append(text)
        return user if any_role else [ln.strip() for ln in lines]
    msgs = []
    for i, m in enumerate(history):
        if not isinstance(m, str):
            raise TypeError(f"history message {i} is {type(m).__name__}, expected str")
        if m.strip():
            msgs.append(m)
    return msgs


def _evenly_spaced(items: list[str], limit: int) -> list[str]:
    if limit <= 0 or len(items) <= limit:
        return items
    idx = np.linspace(0, len(items) - 1, num=limit).round().astype(int)
    return [items[i] for i in idx]


# ----------------------------------------------------------------- gold judge


class GoldProfileJudge:
    """F-beta of profile units matched to gold statements (see module docstring).

    Args:
        matcher: matcher spec for :func:`comam_env.rewards.match_units`.
        tau: match threshold (``None`` = the matcher's default).
        beta: F-beta weight of recall (1 = F1, the default; 2 = recall counts four times as much).
    """

    name = "gold"

    def __init__(self, matcher: Any = "token-recall", tau: float | None = None, beta: float = 1.0) -> None:
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.matcher, self.tau, self.beta = matcher, tau, float(beta)

    def score(self, profile: str, *, history: Any = None,
              gold_profile: Sequence[str] | None = None) -> JudgeResult:
        gold = [g for g in (gold_profile or ()) if isinstance(g, str) and g.strip()]
        if not gold:
            raise ValueError("GoldProfileJudge needs a non-empty gold_profile; use the 'embedding' or 'auto' judge "
                             "for data without gold profiles")
        units = to_units(profile)
        res = match_units(units, gold, matcher=self.matcher, tau=self.tau)
        c = res.count
        precision = c / len(units) if units else 0.0
        recall = c / len(gold)
        b2 = self.beta ** 2
        f = (1 + b2) * precision * recall / (b2 * precision + recall) if c else 0.0
        return JudgeResult(f, {
            "judge": self.name,
            "precision": precision,
            "recall": recall,
            "beta": self.beta,
            "count": c,
            "n_units": len(units),
            "n_gold": len(gold),
            "matched_gold": list(res.matched_evidence),
        })


# ----------------------------------------------------------------- embedding judge


class EmbeddingJudge:
    """Grounding + coverage of the user's messages, scaled by concision (see module docstring).

    Args:
        embedder: an embedder object (``encode(texts)``) or a name for
            :func:`comam_env.embed.get_embedder` (``"minilm"``, ``"hashing"``),
            resolved on first use.
        target_ratio: profile/user-history token ratio up to which length is not penalised.
        max_history_messages: at most this many (evenly spaced) user messages are embedded.
        cache_size: texts whose embeddings are kept in memory (histories are re-judged
            for every rollout of a group).
    """

    name = "embedding"

    def __init__(self, embedder: Any = "minilm", target_ratio: float = 0.2,
                 max_history_messages: int = 2000, cache_size: int = 50_000) -> None:
        if not 0 < target_ratio <= 1:
            raise ValueError(f"target_ratio must be in (0, 1], got {target_ratio}")
        self._encoder = EmbeddingMatcher(embedder, cache_size=cache_size)
        self.target_ratio = float(target_ratio)
        self.max_history_messages = int(max_history_messages)

    def score(self, profile: str, *, history: Any = None,
              gold_profile: Sequence[str] | None = None) -> JudgeResult:
        units = to_units(profile)
        messages = history_user_messages(history)
        parts: dict[str, Any] = {"judge": self.name, "embedder": self._encoder.name,
                                 "n_units": len(units), "n_messages": len(messages)}
        if not units or not messages:
            parts.update(grounding=0.0, coverage=0.0, concision=0.0, empty_profile=not units,
                         empty_history=not messages)
            return JudgeResult(0.0, parts)
        ratio = sum(estimate_tokens(u) for u in units) / max(1, sum(estimate_tokens(m) for m in messages))
        sample = _evenly_spaced(messages, self.max_history_messages)
        sim = np.clip(self._encoder.encode(units) @ self._encoder.encode(sample).T, 0.0, 1.0)
        grounding = float(sim.max(axis=1).mean())
        coverage = float(sim.max(axis=0).mean())
        concision = 1.0 if ratio <= self.target_ratio else self.target_ratio / ratio
        score = float(np.clip(concision * (grounding + coverage) / 2, 0.0, 1.0))
        parts.update(grounding=grounding, coverage=coverage, concision=concision, length_ratio=ratio,
                     n_messages_embedded=len(sample))
        return JudgeResult(score, parts)


# ----------------------------------------------------------------- LLM judge

_RUBRIC_TEXT = {
    "scenario": "Does the profile capture the situations the user is in: life circumstances, plans, "
                "recurring activities and the contexts in which they ask for help?",
    "preference": "Does it state the user's likes and dislikes correctly, including the most recent "
                  "version of a preference that changed, and the reason for the change when one was given?",
    "profile": "Is it an accurate, concise and well-organised picture of the user as a person, "
               "with no invented facts and no copied small talk?",
}

_PROMPT = """You are a strict evaluator of user profiles written by a personal assistant's memory system.
Read the user's messages and the profile below, then rate the profile on each rubric with an integer
from 0 (missing or wrong) to 10 (complete and accurate).

Rubrics:
{rubrics}

User messages:
{history}

Profile to evaluate:
{profile}

Reply with exactly these lines and nothing else:
{format}"""

_ALIASES = {
    "scenario": r"scenarios?",
    "preference": r"preferences?",
    "profile": r"(?:user[\s_-]*)?profile",
}
_NUMBER = r"(\d+(?:\.\d+)?)\s*(?:/\s*10\b)?"


def build_rubric_prompt(profile: str, history_lines: Sequence[str], rubrics: Sequence[str] = RUBRICS) -> str:
    """The LLM judge's prompt for a profile and the user's messages."""
    return _PROMPT.format(
        rubrics="\n".join(f"- {r}: {_RUBRIC_TEXT.get(r, r)}" for r in rubrics),
        history="\n".join(f"- {h}" for h in history_lines) if history_lines else "(no messages)",
        profile=profile.strip() or "(empty)",
        format="\n".join(f"{r}: <0-10>" for r in rubrics),
    )


def parse_rubric_scores(text: str, rubrics: Sequence[str] = RUBRICS) -> tuple[dict[str, float], dict[str, Any]]:
    """Rubric scores in [0, 10] from a judge reply, and parse flags (see module docstring).

    Returns ``(scores, flags)``; ``flags`` holds ``parse_failed``, ``missing``
    (rubrics not found) and ``positional`` (numbers taken in order).
    """
    text = text or ""
    scores: dict[str, float] = {}
    for r in rubrics:
        alias = _ALIASES.get(r, re.escape(r))
        pat = re.compile(rf"(?<![\w-]){alias}(?:\s+score)?\s*\**\s*[:=\-–]\s*\**\s*{_NUMBER}", re.IGNORECASE)
        found = pat.findall(text)
        if found:
            scores[r] = min(10.0, max(0.0, float(found[-1])))
    if scores:
        missing = [r for r in rubrics if r not in scores]
        return ({r: scores.get(r, 0.0) for r in rubrics},
                {"parse_failed": False, "missing": missing, "positional": False})
    numbers = [float(x) for x in re.findall(rf"(?<![\w.]){_NUMBER}", text)]
    if len(numbers) == len(rubrics) and all(0.0 <= x <= 10.0 for x in numbers):
        return dict(zip(rubrics, numbers)), {"parse_failed": False, "missing": [], "positional": True}
    return {}, {"parse_failed": True, "missing": list(rubrics), "positional": False}


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class LLMJudge:
    """A frozen causal LM scoring a profile on rubrics (see module docstring).

    Args:
        model: a model path or hub id for ``AutoModelForCausalLM.from_pretrained``,
            or an already loaded model (then pass ``tokenizer`` too). Loaded on first use.
        tokenizer: a tokenizer (default: loaded from ``model``).
        generate_fn: ``prompt -> reply`` used instead of a model (API judges, tests).
        device: ``"auto"`` (cuda, else mps, else cpu) or a torch device string.
        dtype: torch dtype name for loading (``"bfloat16"``, ...; default the checkpoint's).
        max_new_tokens: reply length; three short lines need few tokens.
        max_history_tokens: user messages beyond this (estimated) many tokens are
            dropped, oldest first; the prompt is also cut to the model's context window.
        max_profile_chars: longer profiles are truncated (flag ``profile_truncated``).
        fallback_score: score of an unparsable reply.
        rubrics: rubric names.
    """

    name = "llm"

    def __init__(self, model: Any = None, *, tokenizer: Any = None,
                 generate_fn: Callable[[str], str] | None = None, device: str = "auto",
                 dtype: str | None = None, max_new_tokens: int = 48, max_history_tokens: int = 6000,
                 max_profile_chars: int = 8000, fallback_score: float = 0.0,
                 rubrics: Sequence[str] = RUBRICS) -> None:
        if model is None and generate_fn is None:
            raise ValueError("LLMJudge needs a model (path, hub id or loaded model) or a generate_fn")
        if not 0.0 <= fallback_score <= 1.0:
            raise ValueError(f"fallback_score must be in [0, 1], got {fallback_score}")
        self.model_spec, self._tokenizer, self._generate_fn = model, tokenizer, generate_fn
        self.device, self.dtype = device, dtype
        self.max_new_tokens, self.max_history_tokens = int(max_new_tokens), int(max_history_tokens)
        self.max_profile_chars, self.fallback_score = int(max_profile_chars), float(fallback_score)
        self.rubrics = tuple(rubrics)
        self._model = None if isinstance(model, str) or model is None else model
        self._lock = threading.Lock()

    # -- model --------------------------------------------------------------
    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._model is None or self._tokenizer is None:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                src = self.model_spec if isinstance(self.model_spec, str) else None
                if self._tokenizer is None:
                    if src is None:
                        raise ValueError("LLMJudge: pass tokenizer= with an already loaded model")
                    self._tokenizer = AutoTokenizer.from_pretrained(src)
                if self._model is None:
                    kwargs = {"dtype": getattr(torch, self.dtype)} if self.dtype else {}
                    self._model = AutoModelForCausalLM.from_pretrained(src, **kwargs)
                self._model.to(_resolve_device(self.device)).eval()
        return self._model, self._tokenizer

    def _context_limit(self, model: Any, tok: Any) -> int:
        limits = [getattr(model.config, "max_position_embeddings", None), getattr(tok, "model_max_length", None)]
        limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 10**7]
        return (min(limits) if limits else 4096) - self.max_new_tokens

    def _render(self, tok: Any, prompt: str) -> str:
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
        return prompt + "\n"

    def _generate(self, profile: str, lines: list[str]) -> tuple[str, dict[str, Any]]:
        info: dict[str, Any] = {}
        if self._generate_fn is not None:
            return str(self._generate_fn(build_rubric_prompt(profile, lines, self.rubrics))), info
        import torch

        model, tok = self._load()
        limit = self._context_limit(model, tok)
        while True:
            text = self._render(tok, build_rubric_prompt(profile, lines, self.rubrics))
            ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
            n = int(ids.shape[1])
            if n <= limit or not lines:
                break
            # Drop the oldest messages in proportion to the excess, then re-measure.
            keep = int(len(lines) * limit / n * 0.9)
            info["history_truncated"] = True
            lines = lines[len(lines) - keep:] if keep > 0 else []
        if n > limit:  # even without history the prompt is too long: keep its end
            ids = ids[:, -limit:]
            info["prompt_truncated"] = True
        device = next(model.parameters()).device
        ids = ids.to(device)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=self.max_new_tokens, pad_token_id=pad)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True), info

    # -- judging ------------------------------------------------------------
    def score(self, profile: str, *, history: Any = None,
              gold_profile: Sequence[str] | None = None) -> JudgeResult:
        parts: dict[str, Any] = {"judge": self.name}
        profile = profile or ""
        if len(profile) > self.max_profile_chars:
            profile = profile[: self.max_profile_chars]
            parts["profile_truncated"] = True
        if not to_units(profile):
            # Nothing to judge: an empty profile describes nobody.
            parts.update(parse_failed=False, empty_profile=True, rubric_scores={r: 0.0 for r in self.rubrics})
            return JudgeResult(0.0, parts)
        lines = history_user_messages(history)
        kept, total = [], 0
        for line in reversed(lines):  # most recent first, within the token budget
            total += estimate_tokens(line)
            if total > self.max_history_tokens:
                parts["history_truncated"] = True
                break
            kept.append(line)
        reply, info = self._generate(_utf8_safe(profile), [_utf8_safe(x) for x in kept[::-1]])
        parts.update(info)
        scores, flags = parse_rubric_scores(reply, self.rubrics)
        parts.update(flags, reply=reply, rubric_scores=scores)
        if flags["parse_failed"]:
            return JudgeResult(self.fallback_score, parts)
        return JudgeResult(sum(scores.values()) / (10.0 * len(self.rubrics)), parts)


# ----------------------------------------------------------------- auto + factory


class AutoJudge:
    """Gold judge when a gold profile is given, embedding judge otherwise."""

    name = "auto"

    def __init__(self, embedder: Any = "minilm", matcher: Any = "token-recall", tau: float | None = None,
                 **embedding_kwargs: Any) -> None:
        self.gold = GoldProfileJudge(matcher=matcher, tau=tau)
        self._embedder, self._embedding_kwargs = embedder, embedding_kwargs
        self._embedding: EmbeddingJudge | None = None

    @property
    def embedding(self) -> EmbeddingJudge:
        if self._embedding is None:
            self._embedding = EmbeddingJudge(self._embedder, **self._embedding_kwargs)
        return self._embedding

    def select(self, gold_profile: Sequence[str] | None) -> Any:
        """The judge that scores a profile with this ``gold_profile`` (gold or embedding)."""
        has_gold = any(isinstance(g, str) and g.strip() for g in (gold_profile or ()))
        return self.gold if has_gold else self.embedding

    def score(self, profile: str, *, history: Any = None,
              gold_profile: Sequence[str] | None = None) -> JudgeResult:
        # The inner judge's parts name it (parts["judge"] is "gold" or "embedding"):
        # they say which judge actually scored.
        return self.select(gold_profile).score(profile, history=history, gold_profile=gold_profile)


def judge_reads_history(judge: Any, gold_profile: Sequence[str] | None) -> bool:
    """Whether ``judge.score`` looks at its ``history`` argument for this ``gold_profile``.

    ``False`` only for judges known not to (the gold-profile judge, and the auto
    judge when it delegates to it), so a caller can skip rendering the history;
    unknown judge objects are assumed to read it.
    """
    # Exact types: a subclass may override score() and read the history.
    if type(judge) is AutoJudge and type(judge.gold) is GoldProfileJudge:
        has_gold = any(isinstance(g, str) and g.strip() for g in (gold_profile or ()))
        return not has_gold
    return type(judge) is not GoldProfileJudge


def get_judge(name_or_obj: Any = "auto", **kwargs: Any) -> Any:
    """A profile judge by name (:data:`JUDGE_NAMES`, ``"embedding:<embedder>"``,
    ``"llm:<model path or id>"``) with ``kwargs`` for its constructor, or the object
    itself when it already has a ``score`` method."""
    if name_or_obj is None:
        name_or_obj = "auto"
    if not isinstance(name_or_obj, str):
        if callable(getattr(name_or_obj, "score", None)):
            return name_or_obj
        raise TypeError(f"judge {name_or_obj!r} has no score(profile, *, history, gold_profile) method")
    name, _, arg = name_or_obj.partition(":")
    name = name.strip().lower()
    if name == "gold":
        if arg:  # "gold:<beta>": the recall weight of the F-beta (a difficulty knob, see the module doc)
            try:
                kwargs.setdefault("beta", float(arg))
            except ValueError:
                raise ValueError(f"judge {name_or_obj!r}: 'gold:<beta>' needs a number, got {arg!r}") from None
        return GoldProfileJudge(**kwargs)
    if name == "embedding":
        if arg:
            kwargs.setdefault("embedder", arg)
        return EmbeddingJudge(**kwargs)
    if name == "llm":
        if arg:
            kwargs.setdefault("model", arg)
        return LLMJudge(**kwargs)
    if name == "auto" and not arg:
        return AutoJudge(**kwargs)
    raise ValueError(f"unknown judge {name_or_obj!r}; use one of {', '.join(JUDGE_NAMES)} "
                     "('embedding:<embedder>', 'llm:<model>' also work) or an object with score()")
