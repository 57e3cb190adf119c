"""TRL adapters: train the memory roles with ``trl.GRPOTrainer`` (tested with TRL 1.16).

Two ways in, both through the env's public API (:class:`~comam_env.integrations.episodes.RoleEpisode`):

**One role trained, the others fixed** — :func:`role_dataset` + :class:`RoleReward`::

    from trl import GRPOConfig, GRPOTrainer
    from transformers import AutoTokenizer
    from agents.integrations.trl import RoleReward, role_dataset

    tok = AutoTokenizer.from_pretrained(model)
    data = role_dataset("synthetic-32k", "retriever", tok, max_completion_length=64, limit=64)
    trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=RoleReward("synthetic-32k", "retriever"),
                          train_dataset=data, args=GRPOConfig(max_completion_length=64, num_generations=4))
    trainer.train()

Each dataset row is one decision of the trained role (the extractor decides once per chunk, the
retriever once per query) in an episode whose other decisions the fixed policies take (default
:class:`comam_env.policies.CopyAllPolicy`; pass ``fixed=`` any ``policy(agent, obs, env) -> str``).
The prompt is the env's prompt in the tokenizer's chat template, **cut by the env's own
context-window rule** (:func:`agents.llm.truncate_prompt`: middle of the longest body field first)
so that prompt + ``max_completion_length`` fits the model window — TRL 1.16 does not truncate
prompts at all. :class:`RoleReward` replays the row's episode (same question, same seed, same
fixed policies), substitutes the completion for that decision, lets the fixed policies finish the
episode and returns the trained role's reward: its scalar return under the env's ``reward_mode``
(default ``local + global/3``), or only its ``local`` or the ``global`` reward.

**All roles, one shared model, CoMAM credit** — :func:`episode_dataset` + :func:`make_rollout_func`
+ :func:`credited_reward`: the paper's shared-policy ablation. Rows are ``(question, role)`` keys.
For the rows of one generation batch the rollout function plays ``num_generations`` whole episodes
per question with the trainer's model acting for every role (batched generation per role and
turn), applies a credit strategy of :mod:`agents.credit` (``adaptive`` = CoMAM eq. 13–15) to each
group, and returns for the rows of role *n* the completions of role *n* with its integrated reward
``r_n + w_n·r_ans``. TRL then normalises rewards within each block of ``num_generations`` rows —
one question, one role — which is CoMAM's per-role group-relative advantage (eq. 16; TRL's std
convention). Requirements, checked with a clear error: the three role rows of a question in the
same generation batch (``shuffle_dataset=False``, ``generation_batch_size`` a multiple of
``3 × num_generations``) and one step per role per episode (one chunk, one query: the training
episodes of the synthetic and PersonaMem envs with the default ``chunk_tokens``).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from comam_env.integrations.episodes import (ROLES, RoleEpisode, TextPolicy, check_role, fixed_policies,
                                            make_env_factory)

__all__ = ["role_dataset", "RoleReward", "episode_dataset", "episode_key", "parse_episode_key",
           "make_rollout_func", "EpisodeRollout", "credited_reward", "fit_prompt"]

CHANNELS = ("return", "local", "global")
_KEY_PREFIX = "comam-episode"
#: attempts at fitting a decoded prompt into the budget (decode/re-encode can differ at the cuts)
_FIT_ATTEMPTS = 5


def _question_ids(env: Any, question_ids: Sequence[str] | None, limit: int | None) -> list[str]:
    ids = list(question_ids) if question_ids is not None else list(env.unwrapped.question_ids)
    if limit is not None:
        ids = ids[: int(limit)]
    if not ids:
        raise ValueError("no questions: the split is empty or limit=0")
    return ids


def _completion_text(completion: Any) -> str:
    """TRL completions are strings (standard prompts) or message lists (conversational)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"unexpected completion {type(completion).__name__}: expected a str or a list of messages")


def fit_prompt(tokenizer, observation: Mapping[str, Any], budget: int, *, system_prompt: str | None = None) -> tuple[str, dict]:
    """The observation's prompt in the tokenizer's chat template, cut by the env's truncation
    rule so that ``tokenizer(text)`` (as TRL tokenizes a standard prompt) has at most ``budget``
    tokens. Returns the text and the rule's info dict (``truncated``, ``prompt_tokens`` …)."""
    from agents.llm import render_prompt, truncate_prompt

    text = render_prompt(tokenizer, str(observation["prompt"]), system_prompt=system_prompt)
    target = int(budget)
    for _ in range(_FIT_ATTEMPTS):
        ids, info = truncate_prompt(tokenizer, text, observation, target)
        fitted = tokenizer.decode(ids, skip_special_tokens=False) if info["truncated"] else text
        n = len(tokenizer(fitted)["input_ids"])
        if n <= budget:
            return fitted, {**info, "prompt_tokens": n}
        target -= n - budget  # re-encoding merged differently at a cut: shrink and cut again
    raise ValueError(f"cannot fit the prompt into {budget} tokens after {_FIT_ATTEMPTS} attempts")


def _budget(tokenizer, max_completion_length: int, context_window: int | None) -> int:
    from agents.llm import context_window as infer_context

    if context_window is None:
        from transformers import AutoConfig

        path = getattr(tokenizer, "name_or_path", None)
        if not path:
            raise ValueError("cannot infer the model's context window: pass context_window=")
        context_window = infer_context(AutoConfig.from_pretrained(path), tokenizer)
    budget = int(context_window) - int(max_completion_length)
    if budget <= 0:
        raise ValueError(f"max_completion_length={max_completion_length} leaves no room for a prompt in a "
                         f"context window of {context_window} tokens")
    return budget


# --------------------------------------------------------------------------- one role trained


def role_dataset(
    env: str | Callable[[], Any],
    role: str,
    tokenizer,
    *,
    max_completion_length: int,
    context_window: int | None = None,
    question_ids: Sequence[str] | None = None,
    limit: int | None = None,
    fixed: TextPolicy | Mapping[str, TextPolicy] | None = None,
    seed: int = 0,
    system_prompt: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
):
    """A ``datasets.Dataset`` of ``role``'s decisions for ``GRPOTrainer`` (see the module docstring).

    Args:
        env: an env id (``comam_env.make(env, **env_kwargs)``) or a zero-argument env factory.
        role: the trained role (``"extractor"``, ``"profiler"`` or ``"retriever"``).
        tokenizer: the trained model's tokenizer (its chat template renders the prompts).
        max_completion_length: ``GRPOConfig.max_completion_length``; the prompt budget is the
            context window minus this.
        context_window: the model window; ``None`` reads it from the model config next to the
            tokenizer (``max_position_embeddings``, capped by ``model_max_length``).
        question_ids, limit: the questions (default: the env's split), at most ``limit`` of them.
        fixed: the fixed policies of the other roles (and of the trained role's other decisions).
        seed: episode ``i`` is reset with seed ``seed + i``.
        system_prompt: optional system message of the chat template.

    Columns: ``prompt`` (text), ``question_id``, ``seed``, ``role``, ``step`` (the decision's index
    among the role's steps), ``prompt_tokens``, ``truncated``. :class:`RoleReward` reads them back.
    """
    from datasets import Dataset

    role = check_role(role)
    factory = make_env_factory(env, env_kwargs)
    policies = fixed_policies(fixed)
    budget = _budget(tokenizer, max_completion_length, context_window)
    e = factory()
    episode = RoleEpisode(e)
    rows: dict[str, list] = {k: [] for k in ("prompt", "question_id", "seed", "role", "step", "prompt_tokens", "truncated")}
    for i, qid in enumerate(_question_ids(e, question_ids, limit)):
        episode.reset(qid, seed + i)
        turn = episode.play(policies, until=(role, 0))
        while turn is not None:
            text, info = fit_prompt(tokenizer, turn.observation, budget, system_prompt=system_prompt)
            for key, value in (("prompt", text), ("question_id", qid), ("seed", seed + i), ("role", role),
                               ("step", turn.index), ("prompt_tokens", info["prompt_tokens"]),
                               ("truncated", bool(info["truncated"]))):
                rows[key].append(value)
            episode.act(policies[role](turn.agent, turn.observation, e))
            turn = episode.play(policies, until=(role, turn.index + 1))
    return Dataset.from_dict(rows)


class RoleReward:
    """TRL reward function for :func:`role_dataset` rows: the trained role's reward after the
    completion replaces the row's decision (see the module docstring).

    Args:
        env: the same env id / factory (and ``env_kwargs``) the dataset was built from.
        role: the trained role.
        fixed: the same fixed policies as the dataset.
        channel: ``"return"`` (the role's summed scalar reward under the env's ``reward_mode``),
            ``"local"`` (its local reward; ``None`` when undefined, which TRL skips) or
            ``"global"`` (the answer reward).
    """

    def __init__(self, env: str | Callable[[], Any], role: str, *, fixed: TextPolicy | Mapping[str, TextPolicy] | None = None,
                 channel: str = "return", env_kwargs: Mapping[str, Any] | None = None) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; choose one of {list(CHANNELS)}")
        self.role = check_role(role)
        self.channel = channel
        self.policies = fixed_policies(fixed)
        self._factory = make_env_factory(env, env_kwargs)
        self._episode: RoleEpisode | None = None
        self.__name__ = f"comam_{self.role}_{channel}"  # TRL logs rewards under the function's name

    def score(self, question_id: str, seed: int, step: int, completion: str) -> float | None:
        """Replay one row's episode with ``completion`` as the decision and return the reward."""
        if self._episode is None:
            self._episode = RoleEpisode(self._factory())
        episode = self._episode
        episode.reset(question_id, int(seed))
        turn = episode.play(self.policies, until=(self.role, int(step)))
        if turn is None:
            raise ValueError(f"question {question_id!r}: the {self.role} has no step {step} in this episode "
                             "(was the dataset built with other env settings or fixed policies?)")
        episode.act(completion)
        episode.play(self.policies)
        if self.channel == "return":
            return episode.role_return(self.role)
        if self.channel == "local":
            return episode.local_rewards()[self.role]
        return float(episode.trajectory().get("global_reward") or 0.0)

    def __call__(self, prompts=None, completions=None, *, question_id, seed, step, **_: Any) -> list[float | None]:
        if completions is None:
            raise ValueError("RoleReward needs the completions TRL passes")
        return [self.score(q, s, k, _completion_text(c)) for q, s, k, c in zip(question_id, seed, step, completions, strict=True)]


# --------------------------------------------------------------- shared model, CoMAM credit


def episode_key(question_id: str, role: str) -> str:
    """The dataset prompt that stands for ``role``'s part of an episode on ``question_id``
    (the rollout function generates the real prompts from the env)."""
    return f"{_KEY_PREFIX} question_id={question_id} role={check_role(role)}"


def parse_episode_key(prompt: Any) -> tuple[str, str]:
    """``(question_id, role)`` of an :func:`episode_key`; anything else raises ``ValueError``."""
    parts = prompt.split(" ") if isinstance(prompt, str) else []
    if len(parts) == 3 and parts[0] == _KEY_PREFIX and parts[1].startswith("question_id=") and parts[2].startswith("role="):
        return parts[1][len("question_id="):], check_role(parts[2][len("role="):])
    raise ValueError(f"prompt {str(prompt)[:80]!r} is not an episode key; build the dataset with episode_dataset()")


def episode_dataset(env: str | Callable[[], Any], *, question_ids: Sequence[str] | None = None, limit: int | None = None,
                    env_kwargs: Mapping[str, Any] | None = None):
    """Rows ``episode_key(q, role)`` for every question and role, the three roles of a question
    next to each other (train with ``shuffle_dataset=False``; shuffle ``question_ids`` yourself)."""
    from datasets import Dataset

    e = make_env_factory(env, env_kwargs)()
    ids = _question_ids(e, question_ids, limit)
    return Dataset.from_dict({"prompt": [episode_key(q, r) for q in ids for r in ROLES]})


def credited_reward(completions=None, comam_reward=None, **_: Any) -> list[float]:
    """TRL reward function for :func:`make_rollout_func`: the integrated reward the rollout
    computed for each row (``r_n + w_n·r_ans`` under the ``adaptive`` strategy)."""
    if comam_reward is None:
        raise ValueError("credited_reward needs the 'comam_reward' field of comam's rollout_func")
    return [float(r) for r in comam_reward]


def _layout(keys: list[tuple[str, str]], group: int) -> list[str]:
    """The questions of a generation batch, after checking it holds every role of each question
    as one block of ``group`` rows."""
    if len(keys) % group:
        raise ValueError(f"rollout_func got {len(keys)} rows, not a multiple of num_generations={group}")
    blocks = [keys[i:i + group] for i in range(0, len(keys), group)]
    roles_of: dict[str, list[str]] = {}
    for block in blocks:
        if len(set(block)) != 1:
            raise ValueError("rollout_func: a block of num_generations rows mixes prompts; the sampler must repeat "
                             "each row num_generations times")
        q, r = block[0]
        roles_of.setdefault(q, []).append(r)
    for q, roles in roles_of.items():
        if sorted(roles) != sorted(ROLES):
            raise ValueError(
                f"rollout_func: question {q!r} has role rows {roles} in this generation batch, expected each of "
                f"{list(ROLES)} once. Train with shuffle_dataset=False and a generation_batch_size that is a "
                f"multiple of 3 × num_generations so the roles of one episode group are credited together.")
    return list(roles_of)


class EpisodeRollout:
    """``GRPOTrainer(rollout_func=...)``: plays whole episodes with the trainer's model for every
    role and applies ``credit`` (a strategy of :data:`agents.credit.CREDIT_STRATEGIES`;
    ``leave-one-out`` needs counterfactual re-runs and is not offered here). See the module
    docstring for the batch layout it requires. Build it with :func:`make_rollout_func`.

    Extra fields returned per row (TRL forwards them to the reward functions): ``comam_reward``
    (the integrated reward), ``comam_local`` (the role's local reward, NaN when undefined),
    ``comam_global`` (the answer reward) and ``comam_weight`` (the role's ``w_n``; NaN for
    strategies without weights). After a call, :attr:`last_trajectories` holds the ``env.trajectory()``
    of each episode (question-major, ``num_generations`` per question) and :attr:`last_questions`
    the questions, for inspection.
    """

    def __init__(self, env: str | Callable[[], Any], *, credit: str = "adaptive",
                 credit_kwargs: Mapping[str, Any] | None = None, context_window: int | None = None,
                 system_prompt: str | None = None, seed: int = 0, env_kwargs: Mapping[str, Any] | None = None) -> None:
        from agents.credit import CREDIT_STRATEGIES

        if credit not in CREDIT_STRATEGIES or credit == "leave-one-out":
            raise ValueError(f"credit {credit!r}: choose one of {sorted(set(CREDIT_STRATEGIES) - {'leave-one-out'})}")
        self.credit, self.credit_kwargs = credit, dict(credit_kwargs or {})
        self.context_window, self.system_prompt, self.seed = context_window, system_prompt, int(seed)
        self._factory = make_env_factory(env, env_kwargs)
        self._envs: list[Any] = []
        self._calls = itertools.count()
        self.last_trajectories: list[dict] = []
        self.last_questions: list[str] = []

    def __call__(self, prompts: list, trainer) -> dict[str, list]:
        import torch

        from agents.credit import assign_credit_batch
        from agents.generation import TransformersBackend
        from agents.llm import context_window as infer_context
        from agents.llm import render_prompt, truncate_prompt

        call = next(self._calls)
        keys = [parse_episode_key(p) for p in prompts]
        group = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        questions = _layout(keys, group)
        n = len(questions) * group
        while len(self._envs) < n:
            self._envs.append(self._factory())
        tok = trainer.processing_class
        tok = getattr(tok, "tokenizer", tok)
        model = trainer.accelerator.unwrap_model(trainer.model)
        max_new = int(trainer.max_completion_length)
        budget = infer_context(model.config, tok, self.context_window) - max_new
        backend = TransformersBackend(model)
        stop = sorted({int(t) for t in trainer.eos_token_ids})
        pad = tok.pad_token_id if tok.pad_token_id is not None else stop[0]
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, call]).generate_state(1)[0]))
        seeds = np.random.SeedSequence([self.seed, call, 1]).generate_state(n)

        episodes = [RoleEpisode(self._envs[t]) for t in range(n)]
        turns = {t: episodes[t].reset(questions[t // group], int(seeds[t])) for t in range(n)}
        record: dict[tuple[int, str], tuple[list[int], list[int], list[float]]] = {}
        while turns:
            for role in ROLES:
                ts = [t for t, turn in turns.items() if turn.role == role]
                if not ts:
                    continue
                for t in ts:
                    if (t, role) in record:
                        raise ValueError(
                            f"question {questions[t // group]!r}: the {role} acts more than once per episode; the "
                            "shared-model rollout needs one chunk and one query per episode (chunk_tokens, "
                            "queries_per_episode)")
                prompt_ids = []
                for t in ts:
                    obs = turns[t].observation
                    text = render_prompt(tok, str(obs["prompt"]), system_prompt=self.system_prompt)
                    prompt_ids.append(truncate_prompt(tok, text, obs, budget)[0])
                out = backend.generate(prompt_ids, max_new, float(trainer.temperature), float(trainer.top_p), gen,
                                       stop_token_ids=stop, pad_token_id=pad)
                for t, p_ids, c_ids, lps in zip(ts, prompt_ids, out.completion_ids, out.token_logprobs, strict=True):
                    record[(t, role)] = (list(p_ids), list(c_ids), [float(x) for x in lps])
                    nxt = episodes[t].act(tok.decode(c_ids, skip_special_tokens=True))
                    if nxt is None:
                        del turns[t]
                    else:
                        turns[t] = nxt

        B = len(questions)
        local = {r: np.full((B, group), np.nan) for r in ROLES}
        glob = np.zeros((B, group))
        for t, ep in enumerate(episodes):
            b, g = divmod(t, group)
            for r, v in ep.local_rewards().items():
                if v is not None:
                    local[r][b, g] = v
            glob[b, g] = float(ep.trajectory().get("global_reward") or 0.0)
        self.last_questions = list(questions)
        self.last_trajectories = [ep.trajectory() for ep in episodes]
        credited = assign_credit_batch(self.credit, local, glob, **self.credit_kwargs)

        out_rows: dict[str, list] = {k: [] for k in ("prompt_ids", "completion_ids", "logprobs", "comam_reward",
                                                      "comam_local", "comam_global", "comam_weight")}
        index = {q: b for b, q in enumerate(questions)}
        for i, (q, role) in enumerate(keys):
            b, g = index[q], i % group
            p_ids, c_ids, lps = record[(b * group + g, role)]
            out_rows["prompt_ids"].append(p_ids)
            out_rows["completion_ids"].append(c_ids)
            out_rows["logprobs"].append(lps)
            out_rows["comam_reward"].append(float(credited.rewards[role][b, g]))
            out_rows["comam_local"].append(float(local[role][b, g]))
            out_rows["comam_global"].append(float(glob[b, g]))
            w = credited.weights
            out_rows["comam_weight"].append(float(w[b, ROLES.index(role)]) if w is not None else float("nan"))
        return out_rows


def make_rollout_func(env: str | Callable[[], Any], **kwargs: Any) -> EpisodeRollout:
    """An :class:`EpisodeRollout` for ``GRPOTrainer(rollout_func=...)`` (same arguments)."""
    return EpisodeRollout(env, **kwargs)
