"""ResRL on groups built like real ones: hidden states of the tiny model for responses that share
prefixes, duplicate positives and one long negative, checked against an independent float64
computation written here (full SVD, one token at a time). Plus exact-zero advantages, the one
success definition, and non-finite inputs."""

from __future__ import annotations

import math

import pytest
import torch

from resrl_agents.rollout.types import Batch
from resrl_agents.trainers.advantages import group_advantages
from resrl_agents.config.schema import AlgoConfig
from resrl_agents.trainers.forward import ResRLSettings, score_batch
from resrl_agents.trainers.resrl import resrl_group_weights
from test_resrl import ref_quantile  # the same linear-interpolation quantile as the other reference

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- reference


def ln(v):
    m = v.mean()
    return (v - m) / torch.sqrt(((v - m) ** 2).mean() + 1e-5)


def reference(h, pos, neg, *, rank, rank_tol=1e-3, gate="off_span", span_tol=1e-6, w_min=0.1, lam=0.1):
    """Weights and in-span flags straight from the definitions, float64, no sampling."""
    h = h.double()
    P = [ln(h[i]) for i in range(len(h)) if pos[i]]
    X = torch.stack(P)
    mu = X.mean(0)
    _, S, Vh = torch.linalg.svd(X - mu, full_matrices=False)
    k_max = min(rank, len(P) - 1, h.shape[1])
    k = sum(1 for s in S[:k_max].tolist() if s >= rank_tol * S[0].item())
    V = Vh[:k].T
    w = torch.ones(len(h), dtype=torch.float64)
    span, d = {}, {}
    for i in range(len(h)):
        if not neg[i]:
            continue
        hc = ln(h[i]) - mu
        r = hc - V @ (V.T @ hc)
        d[i] = float(r @ r) / float(hc @ hc)
        near = min(float(((ln(h[i]) - p) ** 2).sum()) for p in P)
        span[i] = gate == "off_span" and (float(r @ r) <= span_tol * float(hc @ hc) or near <= span_tol * float(hc @ hc))
    gated = [i for i in d if not span[i]]
    lo, hi = ref_quantile([d[i] for i in gated], 0.2), ref_quantile([d[i] for i in gated], 0.8)
    for i in d:
        if span[i]:
            w[i] = w_min
        elif hi - lo < 1e-5:
            w[i] = (w_min + 1) / 2
        else:
            w[i] = w_min + (1 - w_min) * min(max((d[i] - lo) / max(hi - lo, 1e-6), 0.0), 1.0)
    for i in range(len(h)):
        if pos[i]:
            w[i] = lam
    return w, span, k, (hi - lo < 1e-5)


# ----------------------------------------------------------------------------- a real group

PROMPT = [5, 17, 29, 41, 53, 65, 77, 89]
RIGHT = [[101, 102, 103, 104, 105, 106, 107, 108], [111, 112, 113, 114, 115, 116, 117, 118]]


def real_group(model, n_dup=5, diverge=6, long_neg=20):
    """Rows: RIGHT[0] x n_dup (duplicates), RIGHT[1], four negatives that copy RIGHT[0] up to
    ``diverge`` and then go wrong, and one long negative sharing nothing. Returns the policy-token
    hidden states for both positions, (pos, neg) flags and each token's response-local index."""
    g = torch.Generator().manual_seed(0)
    rows = [RIGHT[0]] * n_dup + [RIGHT[1]]
    for j in range(4):
        wrong = torch.randint(300, 900, (8 - diverge,), generator=g).tolist()
        rows.append(RIGHT[0][:diverge] + wrong)
    rows.append(torch.randint(300, 900, (long_neg,), generator=g).tolist())
    is_pos = [True] * (n_dup + 1) + [False] * 5
    T = len(PROMPT) + max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(PROMPT) + len(r)] = torch.tensor(PROMPT + r)
    with torch.no_grad():
        hs = model.double()(input_ids=ids, output_hidden_states=True).hidden_states[-2]  # (B, T, H)
    model.float()
    out = {"predicting": [], "own": []}
    pos, neg, local = [], [], []
    for i, r in enumerate(rows):
        for j in range(len(r)):
            t = len(PROMPT) + j  # position of response token j
            out["predicting"].append(hs[i, t - 1])
            out["own"].append(hs[i, t])
            pos.append(is_pos[i])
            neg.append(not is_pos[i])
            local.append((i, j))
    return {k: torch.stack(v) for k, v in out.items()}, torch.tensor(pos), torch.tensor(neg), local


@pytest.mark.parametrize("position", ["predicting", "own"])
@pytest.mark.parametrize("gate", ["off_span", "paper"])
def test_real_group_matches_float64_reference(tiny, gate, position):
    model, _ = tiny
    h, pos, neg, _ = real_group(model)
    w, stats = resrl_group_weights(h[position], pos, neg, rank=64, gate=gate, seed=0)
    ref, span, k, degenerate = reference(h[position], pos, neg, rank=64, gate=gate)
    torch.testing.assert_close(w, ref, rtol=0, atol=1e-8)
    assert stats.rank == k and stats.degenerate == degenerate
    assert stats.n_in_span == sum(span.values())


def test_shared_prefix_is_in_span_and_no_longer_collapses_the_gate(tiny):
    """Four negatives copy a right answer for 6 of 8 tokens; a fifth (20 tokens) shares nothing.
    Weighed by the predicting state, tokens 0..6 of the four (the first wrong one, 6, included)
    and token 0 of the long one (predicted from the prompt's last state, like every response's)
    sit on a positive's exact state: 29 of 52 negative tokens get w_min, and the other 23 (wrong
    tails and the long negative) are ranked among themselves."""
    model, _ = tiny
    h, pos, neg, local = real_group(model)
    w, s = resrl_group_weights(h["predicting"], pos, neg, rank=64, seed=0)
    shared = torch.tensor([n and (local[i][1] <= 6 if local[i][0] < 10 else local[i][1] == 0)
                           for i, n in enumerate(neg.tolist())])
    assert int(shared.sum()) == 29 and torch.equal(s.in_span, shared)
    assert torch.all(w[shared] == 0.1) and not s.degenerate
    assert w[neg & ~shared].max() == 1.0 and w[neg & ~shared].min() == pytest.approx(0.1)
    _, s32 = resrl_group_weights(h["predicting"].float(), pos, neg, rank=64, seed=0)  # float32: same tokens
    assert torch.equal(s32.in_span, shared)
    # weighed by their own state, the first wrong token (6) leaves the span, and so does the
    # long negative's token 0: 4 x 6 = 24 in span
    w_own, s_own = resrl_group_weights(h["own"], pos, neg, rank=64, seed=0)
    first_wrong = torch.tensor([n and local[i][1] == 6 and local[i][0] < 10 for i, n in enumerate(neg.tolist())])
    assert s_own.n_in_span == 24 and not s_own.in_span[first_wrong].any()


def test_paper_gate_is_degenerate_when_shared_prefixes_dominate(tiny):
    """Four negatives that go wrong only at their last token (7) and one 4-token negative: 33 of
    the 36 negative tokens are predicted from a positive's exact state (92%), so q20 = q80 = 0 and
    the paper's gate gives every negative the midpoint; the off-span gate ranks the other 3."""
    model, _ = tiny
    h, pos, neg, _ = real_group(model, diverge=7, long_neg=4)
    _, paper = resrl_group_weights(h["predicting"], pos, neg, rank=64, gate="paper", seed=0)
    _, off = resrl_group_weights(h["predicting"], pos, neg, rank=64, seed=0)
    assert paper.degenerate and not off.degenerate


def test_duplicate_positives_do_not_define_directions(tiny):
    """Five copies of one right answer plus another: 15 distinct positive predicting states (8 + 8,
    the prompt's last state shared), so 14 directions, not min(64, 47, H) = 47 of which 33 would
    be fitted to rounding noise."""
    model, _ = tiny
    h, pos, neg, _ = real_group(model)
    for dtype in (torch.float64, torch.float32):
        _, s = resrl_group_weights(h["predicting"].to(dtype), pos, neg, rank=64, seed=0)
        assert s.rank == 14


def test_weights_stable_across_svd_seeds_with_a_spectral_gap():
    """The randomized path (M = 600, H = 256): five seeds, max |Δw| <= 1e-3."""
    g = torch.Generator().manual_seed(0)
    H, k = 256, 6
    B = torch.linalg.qr(torch.randn(H, k, generator=g)).Q
    X = 2.0 + (torch.randn(600, k, generator=g) * torch.linspace(5, 1, k)) @ B.T + 1e-3 * torch.randn(600, H, generator=g)
    Y = torch.randn(200, H, generator=g) + 0.5 * torch.randn(200, k, generator=g) @ B.T
    h = torch.cat([X, Y])
    pos = torch.arange(800) < 600
    ws = [resrl_group_weights(h, pos, ~pos, rank=6, seed=s)[0] for s in range(5)]
    assert max(float((w - ws[0]).abs().max()) for w in ws) <= 1e-3


def test_non_finite_hidden_states_are_an_error_not_nan_weights(tiny):
    model, _ = tiny
    h, pos, neg, _ = real_group(model)
    for where in (neg, pos):  # in a negative token, and in a positive one (was a LinAlgError)
        bad = h["predicting"].clone()
        bad[where.nonzero()[0, 0], 3] = float("nan")
        with pytest.raises(FloatingPointError, match="non-finite hidden states in 1 of"):
            resrl_group_weights(bad, pos, neg, seed=0)


def test_scoring_pass_names_the_group_with_non_finite_states(tiny):
    model, tok = tiny
    ids = torch.randint(10, 500, (4, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(4, 12)
    mask[:, 6:] = 1
    batch = Batch(input_ids=ids, attention_mask=torch.ones(4, 12, dtype=torch.long), loss_mask=mask,
                  logp_sample=torch.zeros(4, 12), reward=torch.tensor([1.0, 0, 0, 1]),
                  seq_adv=torch.tensor([1.0, -1, -1, 1]), group_id=torch.full((4,), 77),
                  response_len=torch.full((4,), 6), success=torch.tensor([True, False, False, True]))
    settings = ResRLSettings.from_algo(AlgoConfig(resrl=True, rank=4, max_pos_tokens=4096, hidden_position="predicting"))
    layer = model.get_decoder().layers[0]
    handle = layer.register_forward_hook(lambda m, i, o: (o[0].fill_(float("inf")),) + tuple(o[1:])
                                         if isinstance(o, tuple) else o.fill_(float("inf")))
    try:
        with pytest.raises(FloatingPointError, match="group 77"):
            score_batch(model, batch, micro_batch_size=2, temperature=1.0, device=torch.device("cpu"),
                        resrl=settings, group_seed={77: 0})
    finally:
        handle.remove()


# ----------------------------------------------------------------------------- advantages


@pytest.mark.parametrize("value", [0.7, 0.1, -0.3, 1e-8, 10.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equal_rewards_give_exactly_zero_advantage(value, dtype):
    for G in range(2, 65):
        reward = torch.full((G,), value, dtype=dtype)
        gid = torch.zeros(G, dtype=torch.long)
        for norm_std in (True, False):  # GRPO and Dr.GRPO
            adv = group_advantages(reward, gid, estimator="grpo", norm_std=norm_std)
            assert torch.all(adv == 0), (value, G, norm_std, adv[:3])


def test_tiny_real_offsets_keep_their_float64_advantage():
    # 0.7 and 0.7 + 1e-8 differ in float64: GRPO normalises the spread, A = ±1/sqrt(2) per row
    # (mean 0.7 + 5e-9, unbiased std 1e-8/sqrt(2), eps 1e-6 >> std: A ≈ ±5e-9/1e-6 = ±0.005)
    reward = torch.tensor([0.7, 0.7 + 1e-8], dtype=torch.float64)
    adv = group_advantages(reward, torch.zeros(2, dtype=torch.long), estimator="grpo")
    std = 1e-8 / math.sqrt(2)
    expected = torch.tensor([-5e-9, 5e-9], dtype=torch.float64) / (std + 1e-6)
    torch.testing.assert_close(adv, expected, rtol=1e-6, atol=0)


def test_success_decides_the_sign_estimators_not_the_reward():
    # a WebShop purchase worth 0.1 that is not a full-score purchase (won False) is a failure
    reward = torch.tensor([0.1, 1.0, 0.0])
    success = torch.tensor([False, True, False])
    gid = torch.zeros(3, dtype=torch.long)
    assert group_advantages(reward, gid, estimator="w_reinforce", success=success, lam=0.1).tolist() == \
        pytest.approx([-1.0, 0.1, -1.0])
    assert group_advantages(reward, gid, estimator="nsr", success=success).tolist() == [-1.0, 0.0, -1.0]
    assert group_advantages(reward, gid, estimator="psr", success=success).tolist() == [0.0, 1.0, 0.0]


def test_non_finite_reward_names_its_row():
    with pytest.raises(FloatingPointError, match=r"row\(s\) \[1\]"):
        group_advantages(torch.tensor([1.0, float("nan")]), torch.zeros(2, dtype=torch.long), estimator="grpo")
