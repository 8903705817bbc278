"""ResRL: negative-sample projection-residual weighting (ResRL, arXiv 2026).

A negative token whose hidden state lies inside the subspace spanned by the group's positive
tokens shares its representation with correct reasoning, so pushing it down would also hurt the
positives; it gets a small weight. A token far from that subspace is "specifically wrong" and
keeps its full negative gradient. Per prompt group:

    X     = LN(h[positive tokens])            LayerNorm without affine, sample M <= m rows
    mu    = mean(X)                           positive centroid
    Xc    = X - mu ≈ U_k S_k V_kᵀ             rank-k randomized SVD, k = min(rank, M-1, H)
    hc    = LN(h_t) - mu                      every negative token t
    r     = hc - (hc V_k) V_kᵀ                residual outside the positive subspace
    d_t   = ‖r‖² / ‖hc‖²   ("normalized", the paper)   or   ‖r‖² / H   ("hidden_size", the code)
    lo,hi = quantile(d, q_lo), quantile(d, q_hi)        over the group's negatives
    w_t   = w_min + (1 - w_min) · clip((d_t - lo) / max(hi - lo, range_eps), 0, 1)
    w_t   = λ for positive tokens, 1 for tokens that are neither

The trainer multiplies the token advantage by ``w_t``. Groups with no positives, no negatives or
fewer than ``min_pos_tokens`` positive tokens are not weighted at all (every weight 1, positives
included; the released code wrongly kept λ there). If hi - lo < degenerate_eps every negative gets
the midpoint (w_min + 1) / 2.

Notation:
    N  tokens of one group (policy tokens only)       H  hidden size
    M  positive tokens used (after sampling, <= m)    k  rank of the positive subspace
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["GroupStats", "resrl_group_weights", "resrl_weights"]

OVERSAMPLE = 8  # extra random directions of the randomized SVD (Halko et al. 2009: 5..10)
LN_EPS = 1e-5


@dataclass(frozen=True)
class GroupStats:
    """What happened to one group (for metrics)."""

    weighted: bool  # False: fallback, every weight 1
    reason: str  # "" | "no_pos" | "no_neg" | "few_pos_tokens"
    rank: int  # k actually used (0 in fallback)
    mean_residual: float  # mean d over the negatives (nan in fallback)
    mean_neg_weight: float  # mean w over the negatives (1 in fallback, nan without negatives)
    degenerate: bool = False  # hi - lo < degenerate_eps: negatives got the midpoint


def _positive_subspace(X: Tensor, k: int, niter: int, seed: int) -> Tensor:
    """Top-k right singular vectors ``V_k (H, k)`` of the centred positives ``X (M, H)``.

    Randomized SVD (``torch.svd_lowrank``). When the Gram matrix ``XᵀX (H, H)`` is cheaper to
    form than the power iterations over ``X`` (small H, many tokens), it is decomposed instead:
    its singular vectors are ``X``'s right singular vectors, and each iteration costs O(H²q)
    instead of O(MHq).
    """
    M, H = X.shape
    if k == 0:
        return X.new_zeros(H, 0)
    q = min(k + OVERSAMPLE, M, H)
    use_gram = M > H and M * H * H < (2 * niter + 2) * M * H * q
    A = X.T @ X if use_gram else X  # (H, H) or (M, H)
    # svd_lowrank draws its test matrix from the global RNG: fork it so the result depends only on
    # (group, seed) and the caller's RNG stream is untouched.
    devices = [X.device] if X.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        _, _, V = torch.svd_lowrank(A, q=q, niter=niter)  # V: (H, q)
    return V[:, :k]  # (H, k)


def _quantile_gate(
    d: Tensor, w_min: float, q_lo: float, q_hi: float, range_eps: float, degenerate_eps: float
) -> tuple[Tensor, bool]:
    """Group-relative map of residual energies ``d (Nn,)`` to weights in [w_min, 1]."""
    lo = torch.quantile(d, q_lo)
    hi = torch.quantile(d, q_hi)
    if hi - lo < degenerate_eps:  # no spread to rank by: every negative gets the midpoint
        return torch.full_like(d, (w_min + 1.0) / 2.0), True
    rng = torch.clamp(hi - lo, min=range_eps)
    return w_min + (1.0 - w_min) * ((d - lo) / rng).clamp(0.0, 1.0), False


def resrl_group_weights(
    h: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    rank: int = 64,
    max_pos_tokens: int = 4096,
    min_pos_tokens: int = 4,
    w_min: float = 0.1,
    lam: float = 0.1,
    q_lo: float = 0.2,
    q_hi: float = 0.8,
    range_eps: float = 1e-6,
    degenerate_eps: float = 1e-5,
    niter: int = 4,
    residual_norm: str = "normalized",
    seed: int,
) -> tuple[Tensor, GroupStats]:
    """Token weights ``(N,)`` of ONE prompt group from hidden states ``h (N, H)``.

    ``pos``/``neg`` ``(N,)`` bool mark tokens of positive / negative responses. Computed in
    float32 (float64 if ``h`` is float64) and returned in that dtype on ``h``'s device.
    """
    if residual_norm not in ("normalized", "hidden_size"):
        raise ValueError(f"residual_norm must be 'normalized' or 'hidden_size', got {residual_norm!r}")
    if bool((pos & neg).any()):
        raise ValueError("a token cannot be both positive and negative")
    dtype = torch.float64 if h.dtype == torch.float64 else torch.float32
    N, H = h.shape
    w = torch.ones(N, dtype=dtype, device=h.device)  # (N,)
    pos_idx = pos.nonzero().squeeze(1)  # (P,)
    neg_idx = neg.nonzero().squeeze(1)  # (Nn,)

    reason = ""
    if pos_idx.numel() == 0:
        reason = "no_pos"
    elif neg_idx.numel() == 0:
        reason = "no_neg"
    elif pos_idx.numel() < min_pos_tokens:
        reason = "few_pos_tokens"
    if reason:  # fallback: no weighting at all, no λ either
        mean_w = 1.0 if neg_idx.numel() else math.nan
        return w, GroupStats(False, reason, 0, math.nan, mean_w)

    if pos_idx.numel() > max_pos_tokens:  # uniform sample without replacement, seeded per group
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(pos_idx.numel(), generator=g)[:max_pos_tokens]
        pos_idx = pos_idx[pick.to(pos_idx.device)]
    M = pos_idx.numel()

    X = F.layer_norm(h[pos_idx].to(dtype), (H,), eps=LN_EPS)  # (M, H)
    mu = X.mean(dim=0)  # (H,)
    Xc = X - mu  # (M, H)
    k = min(rank, M - 1, H)
    V_k = _positive_subspace(Xc, k, niter, seed)  # (H, k)

    hc = F.layer_norm(h[neg_idx].to(dtype), (H,), eps=LN_EPS) - mu  # (Nn, H)
    r = hc - (hc @ V_k) @ V_k.T  # (Nn, H)
    r2 = (r * r).sum(dim=1)  # (Nn,)
    if residual_norm == "normalized":
        hc2 = (hc * hc).sum(dim=1)  # (Nn,)
        d = r2 / hc2.clamp_min(torch.finfo(dtype).tiny)  # hc == 0 gives r == 0, so d = 0
    else:
        d = r2 / H

    w_neg, degenerate = _quantile_gate(d, w_min, q_lo, q_hi, range_eps, degenerate_eps)  # (Nn,)
    w[neg_idx] = w_neg
    w[pos] = lam  # every positive token, sampled into X or not
    stats = GroupStats(True, "", k, float(d.mean()), float(w_neg.mean()), degenerate)
    return w, stats


def resrl_weights(
    h: Tensor,
    token_group: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    group_seeds: Mapping[int, int],
    **kw: Any,
) -> tuple[Tensor, list[GroupStats]]:
    """Weights ``(N_total,)`` for tokens of many groups, each group weighted on its own.

    ``h (N_total, H)``, ``token_group (N_total,)`` long group id of every token, ``pos``/``neg``
    ``(N_total,)`` bool. ``group_seeds`` maps each group id to its seed, so a group's weights depend
    only on its own tokens and seed: not on the other groups, their order, or how a batch is split.
    ``kw`` are the keyword arguments of :func:`resrl_group_weights`. Stats are listed in ascending
    group-id order.
    """
    dtype = torch.float64 if h.dtype == torch.float64 else torch.float32
    w = torch.ones(h.shape[0], dtype=dtype, device=h.device)  # (N_total,)
    stats: list[GroupStats] = []
    for gid in torch.unique(token_group).tolist():  # sorted
        if gid not in group_seeds:
            raise KeyError(f"no seed for group {gid}")
        rows = (token_group == gid).nonzero().squeeze(1)  # (N_g,)
        w_g, s = resrl_group_weights(h[rows], pos[rows], neg[rows], seed=group_seeds[gid], **kw)
        w[rows] = w_g
        stats.append(s)
    return w, stats
