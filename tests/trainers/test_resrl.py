"""ResRL weighting: geometry, a full-SVD float64 reference, fallbacks, sampling and group order."""

from __future__ import annotations

import math

import pytest
import torch

from resrl_agents.trainers.resrl import GroupStats, resrl_group_weights

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- reference


def ref_layer_norm(v, eps=1e-5):
    mean = sum(v.tolist()) / len(v)
    var = sum((x - mean) ** 2 for x in v.tolist()) / len(v)
    return (v - mean) / math.sqrt(var + eps)


def ref_quantile(values, q):
    s = sorted(values)
    x = q * (len(s) - 1)
    i = math.floor(x)
    j = min(i + 1, len(s) - 1)
    return s[i] + (x - i) * (s[j] - s[i])


def ref_weights(h, pos, neg, *, rank=64, w_min=0.1, lam=0.1, q_lo=0.2, q_hi=0.8, residual_norm="normalized"):
    """Straight from the formula: float64, full SVD, one negative token at a time, no sampling."""
    h = h.double()
    N, H = h.shape
    pos_rows = [i for i in range(N) if pos[i]]
    neg_rows = [i for i in range(N) if neg[i]]
    X = torch.stack([ref_layer_norm(h[i]) for i in pos_rows])  # (M, H)
    mu = X.mean(0)
    _, _, Vh = torch.linalg.svd(X - mu, full_matrices=False)
    k = min(rank, len(pos_rows) - 1, H)
    V_k = Vh[:k].T  # (H, k)
    d = []
    for i in neg_rows:
        hc = ref_layer_norm(h[i]) - mu
        r = hc - V_k @ (V_k.T @ hc)
        d.append(float(r @ r) / (float(hc @ hc) if residual_norm == "normalized" else H))
    lo, hi = ref_quantile(d, q_lo), ref_quantile(d, q_hi)
    w = torch.ones(N, dtype=torch.float64)
    for i, di in zip(neg_rows, d):
        w[i] = w_min + (1 - w_min) * min(max((di - lo) / max(hi - lo, 1e-6), 0.0), 1.0)
    for i in pos_rows:
        w[i] = lam
    return w


# ----------------------------------------------------------------------------- synthetic groups


def basis(H, seed):
    """(H, H-1) orthonormal columns, all mean-zero: directions LayerNorm leaves alone."""
    A = torch.randn(H, H - 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    A = A - A.mean(dim=0, keepdim=True)
    return torch.linalg.qr(A).Q


def gapped_group(seed, *, M=40, n_neg=30, n_other=5, H=32, k=6, noise=1e-4):
    """Positives = offset + k-dim signal (σ ~ 1..5) + tiny noise; random negatives; some others."""
    g = torch.Generator().manual_seed(seed)
    B = basis(H, seed)[:, :k]  # (H, k)
    scales = torch.linspace(5.0, 1.0, k, dtype=torch.float64)
    coef = torch.randn(M, k, generator=g, dtype=torch.float64) * scales
    X = 2.0 + coef @ B.T + noise * torch.randn(M, H, generator=g, dtype=torch.float64)
    Y = torch.randn(n_neg + n_other, H, generator=g, dtype=torch.float64)
    h = torch.cat([X, Y])  # (N, H)
    perm = torch.randperm(h.shape[0], generator=g)  # tokens of responses interleave
    pos = torch.zeros(h.shape[0], dtype=torch.bool)
    neg = torch.zeros_like(pos)
    pos[:M] = True
    neg[M : M + n_neg] = True
    return h[perm], pos[perm], neg[perm]


# ----------------------------------------------------------------------------- geometry


def _span_group(H=48, k=4, n=20):
    """50 positives in a k-dim subspace (+1e-3 noise), then n negatives inside it, n orthogonal."""
    g = torch.Generator().manual_seed(0)
    Q = basis(H, 0)
    B, O = Q[:, :k], Q[:, k:]  # positive subspace, its orthogonal complement (mean-zero)
    X = 3.0 + (torch.randn(50, k, generator=g, dtype=torch.float64) * 4) @ B.T
    X = X + 1e-3 * torch.randn(50, H, generator=g, dtype=torch.float64)
    inside = torch.randn(n, k, generator=g, dtype=torch.float64) @ B.T
    outside = torch.randn(n, H - 1 - k, generator=g, dtype=torch.float64) @ O.T
    h = torch.cat([X, inside, outside]).float()  # (90, H)
    pos = torch.arange(90) < 50
    return h, pos, ~pos


def test_paper_gate_in_span_negatives_get_w_min_and_orthogonal_ones_get_1():
    h, pos, neg = _span_group()
    w, stats = resrl_group_weights(h, pos, neg, rank=4, gate="paper", seed=0)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w[50:70], torch.full((20,), 0.1), atol=2e-3, rtol=0)
    torch.testing.assert_close(w[70:], torch.ones(20), atol=2e-3, rtol=0)
    assert torch.all(w[:50] == torch.tensor(0.1))  # positives: λ
    assert stats.weighted and stats.rank == 4 and not stats.degenerate and stats.n_in_span == 0


def test_off_span_gate_sets_in_span_negatives_to_w_min_and_gates_the_rest():
    h, pos, neg = _span_group()
    w, stats = resrl_group_weights(h, pos, neg, rank=4, seed=0)  # gate="off_span", the default
    assert torch.all(w[50:70] == torch.tensor(0.1)) and stats.in_span[50:70].all()
    assert not stats.in_span[70:].any() and stats.n_in_span == 20 and stats.n_neg == 40
    # the 20 off-span negatives are gated among themselves: linear quantiles over 20 values put
    # 4 at or below q20 (w_min) and 4 at or above q80 (1)
    w_off = w[70:]
    assert int(((w_off - 0.1).abs() < 1e-6).sum()) == 4 and int(((w_off - 1).abs() < 1e-6).sum()) == 4
    assert torch.all(w[:50] == torch.tensor(0.1)) and not stats.degenerate


def test_quantile_gating_on_random_data():
    # 300 negatives: linear quantiles put 60 tokens (20 %) at or below lo and 60 at or above hi
    g = torch.Generator().manual_seed(1)
    h = torch.randn(500, 32, generator=g)
    pos = torch.arange(500) < 200
    w, stats = resrl_group_weights(h, pos, ~pos, rank=8, seed=3)
    w_neg = w[200:]
    at_min = (w_neg - 0.1).abs() < 1e-6
    at_one = (w_neg - 1.0).abs() < 1e-6
    assert abs(at_min.float().mean().item() - 0.2) < 0.02
    assert abs(at_one.float().mean().item() - 0.2) < 0.02
    assert torch.all((w_neg >= 0.1 - 1e-6) & (w_neg <= 1 + 1e-6))
    assert 0.1 < stats.mean_neg_weight < 1 and 0 < stats.mean_residual < 1


# ----------------------------------------------------------------------------- vs the reference


@pytest.mark.parametrize("residual_norm", ["normalized", "hidden_size"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_full_svd_reference_with_spectral_gap(residual_norm, seed):
    # M = 40 > k + 8: the randomized SVD is a real approximation, exact up to (σ_7/σ_6)^9 ≈ 0
    h, pos, neg = gapped_group(seed)
    w, stats = resrl_group_weights(h, pos, neg, rank=6, residual_norm=residual_norm, seed=seed)
    ref = ref_weights(h, pos, neg, rank=6, residual_norm=residual_norm)
    assert w.dtype == torch.float64 and stats.rank == 6
    torch.testing.assert_close(w, ref, rtol=0, atol=1e-8)


@pytest.mark.parametrize("residual_norm", ["normalized", "hidden_size"])
def test_matches_full_svd_reference_full_rank(residual_norm):
    # rank 64 > M - 1: k = M - 1 = 11 and q = M, so the whole row space of Xc is captured
    g = torch.Generator().manual_seed(5)
    h = torch.randn(40, 32, generator=g, dtype=torch.float64)
    pos = torch.zeros(40, dtype=torch.bool)
    pos[0:36:3] = True  # M = 12 positives
    neg = ~pos
    neg[[1, 2]] = False  # tokens that are neither keep weight 1
    w, stats = resrl_group_weights(h, pos, neg, residual_norm=residual_norm, seed=0)
    assert stats.rank == int(pos.sum()) - 1
    torch.testing.assert_close(w, ref_weights(h, pos, neg, residual_norm=residual_norm), rtol=0, atol=1e-8)
    assert torch.all(w[~pos & ~neg] == 1)


def test_float32_close_to_reference():
    h, pos, neg = gapped_group(7, noise=1e-2)
    w, _ = resrl_group_weights(h.float(), pos, neg, rank=6, seed=0)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w.double(), ref_weights(h, pos, neg, rank=6), rtol=0, atol=1e-3)


# ----------------------------------------------------------------------------- fallbacks


def _assert_fallback(w, stats, reason):
    assert torch.all(w == 1), "fallback groups must not scale anything, positives included"
    assert stats == GroupStats(False, reason, 0, stats.mean_residual, stats.mean_neg_weight, n_neg=stats.n_neg)
    assert math.isnan(stats.mean_residual)


def test_fallback_no_pos():
    h = torch.randn(10, 8)
    neg = torch.ones(10, dtype=torch.bool)
    w, stats = resrl_group_weights(h, ~neg, neg, seed=0)
    _assert_fallback(w, stats, "no_pos")
    assert stats.mean_neg_weight == 1.0


def test_fallback_no_neg():
    h = torch.randn(10, 8)
    pos = torch.ones(10, dtype=torch.bool)
    w, stats = resrl_group_weights(h, pos, ~pos, seed=0)
    _assert_fallback(w, stats, "no_neg")
    assert math.isnan(stats.mean_neg_weight)


def test_fallback_few_pos_tokens():
    h = torch.randn(10, 8)
    pos = torch.arange(10) < 3  # 3 < min_pos_tokens = 4
    w, stats = resrl_group_weights(h, pos, ~pos, seed=0)
    _assert_fallback(w, stats, "few_pos_tokens")
    w4, stats4 = resrl_group_weights(h, torch.arange(10) < 4, torch.arange(10) >= 4, seed=0)
    assert stats4.weighted and stats4.rank == 3 and torch.all(w4[:4] == torch.tensor(0.1))


def test_degenerate_range_gives_midpoint():
    # every negative token has the same hidden state -> same d -> hi - lo = 0 -> (0.1 + 1) / 2
    g = torch.Generator().manual_seed(0)
    h = torch.randn(12, 16, generator=g)
    h[6:] = h[6]
    pos = torch.arange(12) < 6
    w, stats = resrl_group_weights(h, pos, ~pos, seed=0)
    torch.testing.assert_close(w[6:], torch.full((6,), 0.55))
    assert torch.all(w[:6] == torch.tensor(0.1))
    assert stats.weighted and stats.degenerate and stats.mean_neg_weight == pytest.approx(0.55)


def test_rejects_overlapping_flags_and_bad_norm():
    h = torch.randn(6, 4)
    pos = torch.tensor([1, 1, 1, 1, 1, 0], dtype=torch.bool)
    with pytest.raises(ValueError, match="both"):
        resrl_group_weights(h, pos, torch.ones(6, dtype=torch.bool), seed=0)
    with pytest.raises(ValueError, match="residual_norm"):
        resrl_group_weights(h, pos, ~pos, residual_norm="l2", seed=0)


# ----------------------------------------------------------------------------- sampling, RNG


def test_sampling_uses_exactly_m_seeded_tokens():
    g = torch.Generator().manual_seed(2)
    h = torch.randn(80, 32, generator=g, dtype=torch.float64)
    pos = torch.arange(80) < 50  # pool of 50 > m = 16
    neg = ~pos
    w, stats = resrl_group_weights(h, pos, neg, max_pos_tokens=16, seed=11)
    assert stats.rank == 15  # k = M - 1 with M = 16
    # the documented sample: randperm of the pool under a Generator seeded with the group's seed
    pick = torch.randperm(50, generator=torch.Generator().manual_seed(11))[:16]
    sampled = torch.zeros(80, dtype=torch.bool)
    sampled[pick] = True
    ref = ref_weights(h, sampled, neg)  # q = M: exact, so equality proves which 16 tokens were used
    torch.testing.assert_close(w[neg], ref[neg], rtol=0, atol=1e-8)
    assert torch.all(w[pos] == 0.1)  # λ on every positive, sampled or not
    w_again, _ = resrl_group_weights(h, pos, neg, max_pos_tokens=16, seed=11)
    assert torch.equal(w, w_again)
    w_other, _ = resrl_group_weights(h, pos, neg, max_pos_tokens=16, seed=12)
    assert not torch.allclose(w, w_other)


def test_independent_of_and_invisible_to_global_rng():
    # no spectral gap and no power iteration: the SVD's random test matrix visibly matters ...
    h, pos, neg = gapped_group(3, noise=0.3)
    kw = dict(rank=6, niter=0)
    w_other, _ = resrl_group_weights(h, pos, neg, seed=6, **kw)
    torch.manual_seed(123)
    w1, _ = resrl_group_weights(h, pos, neg, seed=5, **kw)
    after = torch.randn(3)
    torch.manual_seed(123)
    expected = torch.randn(3)
    torch.manual_seed(999)
    w2, _ = resrl_group_weights(h, pos, neg, seed=5, **kw)
    assert (w1 - w_other).abs().max() > 1e-2
    assert torch.equal(w1, w2)  # ... yet only the group's seed decides it, not the global RNG
    assert torch.equal(after, expected)  # and the caller's RNG stream was not advanced
