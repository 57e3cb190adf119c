"""SelectionPolicy: protocol compliance, action encoding, log-prob consistency, persistence."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from agents.base import EXTRACTOR, PROFILER, RETRIEVER, load_policy, make_policy
from agents.selection import SelectionPolicy, stack_observations

D, K = 12, 6


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _obs(rng, role, n_valid, with_options=None):
    c = np.zeros((K, D), np.float32)
    c[:n_valid] = rng.normal(size=(n_valid, D))
    c[:n_valid] /= np.linalg.norm(c[:n_valid], axis=1, keepdims=True)
    m = np.zeros(K, np.int8)
    m[:n_valid] = 1
    has_opt = role == RETRIEVER if with_options is None else with_options
    return {
        "role": role,
        "candidates": c,
        "mask": m,
        "query": rng.normal(size=D).astype(np.float32) if role == RETRIEVER else np.zeros(D, np.float32),
        "options": rng.normal(size=(4, D)).astype(np.float32) if has_opt else np.zeros((4, D), np.float32),
    }


def _batch(role, n=10, seed=0):
    rng = np.random.default_rng(seed)
    return [_obs(rng, role, int(rng.integers(1, K + 1))) for _ in range(n)]


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("role", [EXTRACTOR, PROFILER, RETRIEVER])
def test_act_logprobs_match_logprobs_of(role, shared):
    policy = SelectionPolicy(dim=D, shared=shared, seed=1)
    # Perturb the output layers so log-probs are not the trivial init values.
    with torch.no_grad():
        for p in policy.trainable_parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    obs = _batch(role)
    for temperature, greedy in [(1.0, False), (0.7, False), (1.0, True)]:
        out = policy.act(role, obs, temperature=temperature, greedy=greedy, generator=torch.Generator().manual_seed(3))
        lp = policy.logprobs_of(role, out.samples)
        torch.testing.assert_close(lp.sum.detach(), out.logprobs, atol=1e-5, rtol=0)
        assert lp.sum.requires_grad and lp.token.shape == lp.mask.shape == (len(obs), K + 1)
        # Decisions = valid candidates (+ the option for the retriever).
        n_valid = np.array([o["mask"].sum() for o in obs])
        np.testing.assert_array_equal(lp.mask.sum(1).numpy(), n_valid + (role == RETRIEVER))
        # Records survive pickling and reordering.
        again = policy.logprobs_of(role, pickle.loads(pickle.dumps(out.samples[::-1])))
        torch.testing.assert_close(again.sum.detach(), out.logprobs.flip(0), atol=1e-5, rtol=0)


def test_action_encoding_and_masking():
    policy = SelectionPolicy(dim=D, keep_prob=0.9, seed=0)
    obs = _batch(RETRIEVER, n=30)
    out = policy.act(RETRIEVER, obs, generator=torch.Generator().manual_seed(0))
    for a, o in zip(out.actions, obs):
        assert a.shape == (K + 1,) and a.dtype == np.int64
        assert np.all(a[:K][o["mask"] == 0] == 0)  # masked candidates never kept
        assert 0 <= a[K] < 4
    out = policy.act(EXTRACTOR, _batch(EXTRACTOR, n=30), generator=torch.Generator().manual_seed(0))
    assert all(a.shape == (K,) and a.dtype == np.int8 and set(np.unique(a)) <= {0, 1} for a in out.actions)
    # Stacked-dict input gives the same result as a list of dicts.
    obs_e = _batch(EXTRACTOR, n=8, seed=4)
    stacked = stack_observations(obs_e)
    a1 = policy.act(EXTRACTOR, obs_e, generator=torch.Generator().manual_seed(5))
    a2 = policy.act(EXTRACTOR, stacked, generator=torch.Generator().manual_seed(5))
    assert all(np.array_equal(x, y) for x, y in zip(a1.actions, a2.actions))
    with pytest.raises(ValueError, match="role"):
        policy.act(RETRIEVER, obs_e)


def test_initial_keep_rate_is_configurable():
    rng = np.random.default_rng(0)
    obs = [_obs(rng, EXTRACTOR, K) for _ in range(400)]
    for keep in (0.5, 0.2):
        policy = SelectionPolicy(dim=D, keep_prob=keep, seed=0)
        out = policy.act(EXTRACTOR, obs, generator=torch.Generator().manual_seed(0))
        rate = np.mean([a.mean() for a in out.actions])
        assert abs(rate - keep) < 0.03, (keep, rate)
        # Untrained retriever: option close to uniform (log 1/4 each).
        rout = policy.logprobs_of(RETRIEVER, policy.act(RETRIEVER, _batch(RETRIEVER), generator=torch.Generator().manual_seed(1)).samples)
        opt_lp = rout.token[:, K]
        torch.testing.assert_close(opt_lp, torch.full_like(opt_lp, np.log(0.25)), atol=0.05, rtol=0)


def test_greedy_and_determinism():
    policy = SelectionPolicy(dim=D, seed=2)
    with torch.no_grad():
        for p in policy.trainable_parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(7 + p.numel())))
    obs = _batch(RETRIEVER, n=12)
    g1 = policy.act(RETRIEVER, obs, greedy=True)
    g2 = policy.act(RETRIEVER, obs, greedy=True, generator=torch.Generator().manual_seed(99))
    assert all(np.array_equal(x, y) for x, y in zip(g1.actions, g2.actions))
    # Greedy keeps exactly the candidates with p > 0.5, i.e. token log-prob > log 0.5 for kept bits.
    lp = policy.logprobs_of(RETRIEVER, g1.samples)
    for i, o in enumerate(obs):
        valid = o["mask"] == 1
        assert torch.all(lp.token[i, :K][torch.as_tensor(valid)] >= np.log(0.5) - 1e-6)
    s1 = policy.act(RETRIEVER, obs, generator=torch.Generator().manual_seed(11))
    s2 = policy.act(RETRIEVER, obs, generator=torch.Generator().manual_seed(11))
    assert all(np.array_equal(x, y) for x, y in zip(s1.actions, s2.actions))
    torch.testing.assert_close(s1.logprobs, s2.logprobs)
    # Same seed → same initial parameters.
    q = SelectionPolicy(dim=D, seed=2)
    r = SelectionPolicy(dim=D, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(q.trainable_parameters(), r.trainable_parameters()))


def test_parameters_per_role_and_shared():
    per_role = SelectionPolicy(dim=D)
    ids = {r: {id(p) for p in per_role.trainable_parameters(r)} for r in (0, 1, 2)}
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])
    shared = SelectionPolicy(dim=D, shared=True)
    assert {id(p) for p in shared.trainable_parameters(0)} == {id(p) for p in shared.trainable_parameters(2)}
    only_ret = SelectionPolicy(dim=D, roles=("retriever",))
    with pytest.raises(ValueError, match="does not act"):
        only_ret.act(EXTRACTOR, _batch(EXTRACTOR))
    with pytest.raises(ValueError, match="dim"):
        SelectionPolicy(dim=D + 1).act(EXTRACTOR, _batch(EXTRACTOR))


def test_gradients_flow_to_the_role_network_only():
    policy = SelectionPolicy(dim=D)
    out = policy.act(PROFILER, _batch(PROFILER), generator=torch.Generator().manual_seed(0))
    policy.logprobs_of(PROFILER, out.samples).sum.sum().backward()
    assert all(p.grad is not None for p in policy.net(PROFILER).keep.parameters())
    assert all(p.grad is None for p in policy.trainable_parameters(EXTRACTOR))


@pytest.mark.parametrize("shared", [False, True])
def test_save_load_reproduces_logprobs(tmp_path, shared):
    policy = SelectionPolicy(dim=D, shared=shared, hidden=20, seed=3)
    with torch.no_grad():
        for p in policy.trainable_parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    out = policy.act(RETRIEVER, _batch(RETRIEVER), generator=torch.Generator().manual_seed(0))
    policy.save(tmp_path / "p")
    assert (tmp_path / "p" / "model.safetensors").exists()
    for loaded in (SelectionPolicy.load(tmp_path / "p"), load_policy(tmp_path / "p")):
        assert isinstance(loaded, SelectionPolicy) and loaded.config.shared == shared and loaded.config.hidden == 20
        torch.testing.assert_close(loaded.logprobs_of(RETRIEVER, out.samples).sum.detach(), out.logprobs, atol=1e-6, rtol=0)
    # Corrupt config → clear error naming the file and field.
    (tmp_path / "p" / "policy.json").write_text('{"kind": "selection"}')
    with pytest.raises(ValueError, match="policy.json.*config"):
        SelectionPolicy.load(tmp_path / "p")


def test_registry_builds_selection_policy():
    p = make_policy("selection", dim=D, shared=True)
    assert isinstance(p, SelectionPolicy) and p.kind == "selection"


def test_retriever_without_options_has_no_option_decision():
    rng = np.random.default_rng(0)
    obs = [_obs(rng, RETRIEVER, 3, with_options=False) for _ in range(4)]
    policy = SelectionPolicy(dim=D)
    out = policy.act(RETRIEVER, obs, generator=torch.Generator().manual_seed(0))
    lp = policy.logprobs_of(RETRIEVER, out.samples)
    assert torch.all(lp.mask[:, K] == 0)
    assert all(a[K] == 0 for a in out.actions)


def test_folded_first_layer_equals_explicit_features():
    policy = SelectionPolicy(dim=D, hidden=16, seed=5, source_features=False, position_features=False,
                             supersede_features=False)
    net = policy.net(RETRIEVER)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    g = torch.Generator().manual_seed(0)
    x, c1, c2 = torch.randn(3, K, D, generator=g), torch.randn(3, D, generator=g), torch.randn(3, D, generator=g)
    role = net.role_emb(torch.tensor([0, 1, 2]))
    match = torch.randn(3, K, generator=g)
    for mlp in (net.keep, net.option):
        ref = mlp(net._features(x, c1, c2, role, match)).squeeze(-1)
        torch.testing.assert_close(net._score(mlp, x, c1, c2, role, match), ref, atol=1e-5, rtol=1e-5)


def _perturbed_net_and_inputs(seed: int, **policy_kw):
    """A retriever net with randomly perturbed weights and random (x, c1, c2, role, match, pos)
    inputs, all drawn from one generator seeded ``seed`` (the draw order is part of the case)."""
    policy_kw.setdefault("supersede_features", False)
    net = SelectionPolicy(dim=D, hidden=16, seed=5, position_features=True, **policy_kw).net(RETRIEVER)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    x, c1, c2 = torch.randn(3, K, D, generator=g), torch.randn(3, D, generator=g), torch.randn(3, D, generator=g)
    role = net.role_emb(torch.tensor([0, 1, 2]))
    match, pos = torch.randn(3, K, generator=g), torch.rand(3, K, generator=g)
    return net, g, (x, c1, c2, role, match, pos)


def test_folded_first_layer_equals_explicit_features_with_positions():
    net, _, (x, c1, c2, role, match, pos) = _perturbed_net_and_inputs(1, source_features=False)
    for mlp in (net.keep, net.option):
        ref = mlp(net._features(x, c1, c2, role, match, pos)).squeeze(-1)
        torch.testing.assert_close(net._score(mlp, x, c1, c2, role, match, pos), ref, atol=1e-5, rtol=1e-5)
        # the position column is used: moving every row's position moves the scores
        assert not torch.allclose(net._score(mlp, x, c1, c2, role, match, pos),
                                  net._score(mlp, x, c1, c2, role, match, 1.0 - pos))


def test_folded_first_layer_equals_explicit_features_with_positions_and_source():
    net, g, (x, c1, c2, role, match, pos) = _perturbed_net_and_inputs(2)  # source features: the default
    src = (torch.rand(3, K, generator=g) > 0.5).float()
    for mlp in (net.keep, net.option):
        ref = mlp(net._features(x, c1, c2, role, match, pos, src)).squeeze(-1)
        torch.testing.assert_close(net._score(mlp, x, c1, c2, role, match, pos, src), ref, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(net._score(mlp, x, c1, c2, role, match, pos, src),
                                  net._score(mlp, x, c1, c2, role, match, pos, 1.0 - src))


def test_source_flag_changes_the_keep_decision_and_old_policies_load_without_it(tmp_path):
    """The profile flag of the observation is an input of the policy (the profiler's output reaches
    the retriever's decision), and a policy.json written before the field existed loads with it off."""
    policy = SelectionPolicy(dim=D, hidden=8, seed=4, supersede_features=False)
    net = policy.net(RETRIEVER)
    with torch.no_grad():
        net.keep[0].weight[:, -1].fill_(3.0)  # the source column (the last one without supersede)
    obs = _obs(np.random.default_rng(0), RETRIEVER, 4)
    flagged = dict(obs, source=np.array([1, 1, 0, 0] + [0] * (K - 4), np.int8))
    lp_a = policy.act(RETRIEVER, [obs], greedy=True).samples[0]
    lp_b = policy.act(RETRIEVER, [flagged], greedy=True).samples[0]
    assert lp_a["source"].sum() == 0 and lp_b["source"][:2].tolist() == [1, 1]
    la = policy.logprobs_of(RETRIEVER, [dict(lp_a, bits=np.ones(K, np.int8))]).sum
    lb = policy.logprobs_of(RETRIEVER, [dict(lp_b, bits=np.ones(K, np.int8))]).sum
    assert not torch.allclose(la, lb)
    old = SelectionPolicy(dim=D, hidden=8, seed=4, source_features=False)
    old.save(tmp_path)
    meta = json.loads((tmp_path / "policy.json").read_text())
    del meta["config"]["source_features"]
    (tmp_path / "policy.json").write_text(json.dumps(meta))
    again = SelectionPolicy.load(tmp_path)
    assert again.config.source_features is False


def test_default_is_the_size_aware_profiler_and_older_policy_files_load_as_trained(tmp_path):
    """New policies get position + supersede features and a profile capacity of 8; a policy.json
    written before those fields existed describes a network without them and must load as such
    (its weights have the old first-layer width, so loading with the new defaults would fail)."""
    cfg = SelectionPolicy(dim=D).config
    assert (cfg.position_features, cfg.source_features, cfg.supersede_features, cfg.profile_capacity) == (True, True, True, 8)
    old = SelectionPolicy(dim=D, hidden=8, seed=4, position_features=False, supersede_features=False,
                          profile_capacity=None)
    old.save(tmp_path)
    meta = json.loads((tmp_path / "policy.json").read_text())
    for name in ("position_features", "supersede_features", "profile_capacity"):
        del meta["config"][name]
    (tmp_path / "policy.json").write_text(json.dumps(meta))
    again = SelectionPolicy.load(tmp_path)
    assert (again.config.position_features, again.config.supersede_features, again.config.profile_capacity) == (False, False, None)
    obs = _obs(np.random.default_rng(2), PROFILER, K)
    s = old.act(PROFILER, [obs], greedy=True).samples[0]
    torch.testing.assert_close(old.logprobs_of(PROFILER, [s]).sum, again.logprobs_of(PROFILER, [s]).sum)


def test_positions_are_relative_ranks_among_valid_rows():
    mask = torch.tensor([[True, False, True, True, False], [True, False, False, False, False]])
    torch.testing.assert_close(SelectionPolicy(dim=2).net(0)._positions(mask),
                               torch.tensor([[0.0, 0.0, 0.5, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]))


def test_position_features_make_the_option_depend_on_which_evidence_is_later():
    """Two kept candidates, each backing one option. Without position features the policy is
    permutation invariant (swapping the candidates' order changes nothing); with them it is not."""
    d = 4
    cand = torch.tensor([[[1.0, 0, 0, 0], [0, 1.0, 0, 0]]])
    swapped = cand[:, [1, 0]]
    options = torch.tensor([[[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]])
    query, kept, role = torch.zeros(1, d), torch.ones(1, 2, dtype=torch.bool), torch.tensor([RETRIEVER])
    for position, should_differ in ((False, False), (True, True)):
        net = SelectionPolicy(dim=d, hidden=8, seed=3, position_features=position).net(RETRIEVER)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
            a = net.option_logits(options, query, cand, kept, role, kept)
            b = net.option_logits(options, query, swapped, kept, role, kept)
        assert (not torch.allclose(a, b)) == should_differ


def test_position_features_survive_save_and_load(tmp_path):
    policy = SelectionPolicy(dim=D, hidden=8, seed=2, position_features=True)
    policy.save(tmp_path / "p")
    again = SelectionPolicy.load(tmp_path / "p")
    assert again.config.position_features is True
    for a, b in zip(policy.trainable_parameters(), again.trainable_parameters()):
        assert torch.equal(a, b)


def test_best_match_feature():
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    others = torch.tensor([[[0.5, 0.5], [2.0, 0.0], [9.0, 9.0]]])
    valid = torch.tensor([[True, True, False]])
    # Row 0: max(0.5, 2.0) = 2.0 (the invalid [9, 9] is ignored); row 1: max(0.5, 0) = 0.5.
    torch.testing.assert_close(SelectionPolicy(dim=2).net(0)._best_match(x, others, valid), torch.tensor([[2.0, 0.5]]))
    assert torch.equal(SelectionPolicy(dim=2).net(0)._best_match(x, others, torch.zeros(1, 3, dtype=torch.bool)), torch.zeros(1, 2))


def test_superseded_is_the_best_similarity_to_a_later_valid_row():
    cand = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [1.0, 0.0]]])
    mask = torch.tensor([[True, True, True, False]])  # the last row (identical to row 0) is masked out
    sup = SelectionPolicy(dim=2).net(0)._superseded(cand, mask)
    torch.testing.assert_close(sup, torch.tensor([[0.8, 0.6, 0.0, 0.0]]))


def test_supersede_features_tell_a_stale_line_from_its_update_and_survive_save_and_load(tmp_path):
    """With the consolidation feature the profiler's keep logit of a line depends on whether a
    later line says something close (the order of two near-identical statements matters); without
    it, the two orders give the same logits up to the permutation."""
    d = 4
    stale_first = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.95, 0.31, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    zeros, role = torch.zeros(1, d), torch.tensor([1])
    for supersede in (False, True):
        policy = SelectionPolicy(dim=d, hidden=8, seed=3, supersede_features=supersede, source_features=False,
                                 position_features=False)
        net = policy.net(1)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
            if supersede:
                net.keep[0].weight[:, -1].fill_(4.0)  # the superseded column
            a = net.keep_logits(stale_first, mask, zeros, role, torch.zeros(1, 4, d))
            b = net.keep_logits(stale_first[:, [1, 0, 2]], mask, zeros, role, torch.zeros(1, 4, d))[:, [1, 0, 2]]
        assert torch.allclose(a[:, 2], b[:, 2])  # the unrelated line is superseded by nothing either way
        assert (not torch.allclose(a[:, :2], b[:, :2])) == supersede
    policy = SelectionPolicy(dim=D, hidden=8, seed=3, supersede_features=True)
    policy.save(tmp_path / "p")
    again = SelectionPolicy.load(tmp_path / "p")
    assert again.config.supersede_features is True
    obs = _obs(np.random.default_rng(1), RETRIEVER, 5)
    s = policy.act(RETRIEVER, [obs], greedy=True).samples[0]
    torch.testing.assert_close(policy.logprobs_of(RETRIEVER, [s]).sum, again.logprobs_of(RETRIEVER, [s]).sum)


def _capped_profiler(cap, seed=1):
    """A profiler with profile_capacity=cap whose keep logits are spread out (not the init's ~0)."""
    policy = SelectionPolicy(dim=D, hidden=8, seed=seed, profile_capacity=cap)
    with torch.no_grad():
        for p in policy.trainable_parameters(PROFILER):
            p.add_(0.8 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return policy


def _subsets(valid, at_most):
    import itertools

    return [s for r in range(at_most + 1) for s in itertools.combinations(valid, r)]


def test_profile_capacity_is_an_exact_distribution_over_subsets_of_at_most_p_units():
    """The capped profiler's log-probs sum to 1 over every subset of at most P valid units, its
    samples never exceed P and their frequencies follow those probabilities, and act's log-probs
    are logprobs_of's (the normaliser is a decision of its own, in the option slot)."""
    cap = 2
    obs = _obs(np.random.default_rng(4), PROFILER, 5)
    policy = _capped_profiler(cap)
    probs = {}
    for s in _subsets(range(5), cap):
        bits = np.zeros(K, np.int8)
        bits[list(s)] = 1
        lp = policy.logprobs_of(PROFILER, [{**obs, "bits": bits, "option": -1, "temperature": 1.0}])
        probs[s] = float(torch.exp(lp.sum))
        assert lp.mask[0, -1] == 1  # 5 valid units > P: the normaliser counts
    assert abs(sum(probs.values()) - 1.0) < 1e-5
    assert max(probs.values()) > 3 * min(probs.values())  # not uniform: the check below can fail
    n = 6000
    out = policy.act(PROFILER, [obs] * n, generator=torch.Generator().manual_seed(0))
    counts = {}
    for a in out.actions:
        s = tuple(np.nonzero(a)[0].tolist())
        assert len(s) <= cap
        counts[s] = counts.get(s, 0) + 1
    for s, p in probs.items():  # every subset within 4 binomial standard errors
        assert abs(counts.get(s, 0) / n - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-3, s
    torch.testing.assert_close(policy.logprobs_of(PROFILER, out.samples[:64]).sum.detach(), out.logprobs[:64],
                               atol=1e-5, rtol=0)


def test_profile_capacity_changes_nothing_on_inputs_of_at_most_p_units():
    """Bit for bit the uncapped policy (same draws, same log-probs, no extra decision) when the
    profiler sees at most P units — evidence-session training is unchanged by the cap."""
    obs = _batch(PROFILER, n=20)  # 1..K valid units
    capped, plain = _capped_profiler(K), _capped_profiler(None)
    for greedy in (False, True):
        a = capped.act(PROFILER, obs, greedy=greedy, generator=torch.Generator().manual_seed(5))
        b = plain.act(PROFILER, obs, greedy=greedy, generator=torch.Generator().manual_seed(5))
        np.testing.assert_array_equal(np.stack(a.actions), np.stack(b.actions))
        assert torch.equal(a.logprobs, b.logprobs)
        la, lb = capped.logprobs_of(PROFILER, a.samples), plain.logprobs_of(PROFILER, b.samples)
        assert torch.equal(la.mask, lb.mask) and torch.equal(la.sum, lb.sum)


def test_profile_capacity_greedy_keeps_the_p_highest_scoring_units_and_grads_reach_the_normaliser(tmp_path):
    cap = 2
    rng = np.random.default_rng(7)
    obs = [_obs(rng, PROFILER, K) for _ in range(8)]
    policy, plain = _capped_profiler(cap), _capped_profiler(None)
    b = stack_observations(obs)
    cand, mask, query, options, source = policy._tensors(b)
    logits = policy.net(PROFILER).keep_logits(cand, mask, query, torch.full((8,), PROFILER), options, source).detach()
    greedy = np.stack(policy.act(PROFILER, obs, greedy=True).actions).astype(bool)
    uncapped = np.stack(plain.act(PROFILER, obs, greedy=True).actions).astype(bool)
    assert (uncapped.sum(1) > cap).any()  # the cap binds somewhere
    for row, lg, keep in zip(uncapped, logits.numpy(), greedy):
        want = np.zeros(K, bool)
        want[np.argsort(-np.where(row, lg, -np.inf), kind="stable")[: min(cap, row.sum())]] = True
        np.testing.assert_array_equal(keep, want)
    # the normaliser depends on every unit's logit, so every keep parameter gets a gradient from it
    lp = policy.logprobs_of(PROFILER, policy.act(PROFILER, obs, generator=torch.Generator().manual_seed(1)).samples)
    (lp.token[:, -1].sum()).backward()
    assert policy.net(PROFILER).keep[-1].weight.grad.abs().sum() > 0
    policy.save(tmp_path / "p")
    assert SelectionPolicy.load(tmp_path / "p").config.profile_capacity == cap
    with pytest.raises(ValueError, match="profile_capacity"):
        SelectionPolicy(dim=D, profile_capacity=0)
