"""ResRL: negative-sample projection-residual weighting (ResRL, arXiv 2026).

A negative token whose hidden state lies inside the subspace spanned by the group's positive
tokens shares its representation with correct reasoning, so pushing it down would also hurt the
positives; it gets a small weight. A token far from that subspace is "specifically wrong" and
keeps its full negative gradient. Per prompt group:

    X     = LN(h[positive tokens])            LayerNorm without affine, sample M <= m rows
    mu    = mean(X)                           positive centroid
    Xc    = X - mu ≈ U_k S_k V_kᵀ             k = #{i <= min(rank, M-1, H) : σ_i >= rank_tol·σ_1}
    hc    = LN(h_t) - mu                      every negative token t
    r     = hc - (hc V_k) V_kᵀ                residual outside the positive subspace
    d_t   = ‖r‖² / ‖hc‖²   ("normalized", the paper)   or   ‖r‖² / H   ("hidden_size", the code)
    span  = ‖r‖² or min_j ‖LN(h_t) - X_j‖² <= span_tol·‖hc‖²    in the subspace, or a positive's state
    lo,hi = quantile(d, q_lo), quantile(d, q_hi)        over the gated negatives
    w_t   = w_min + (1 - w_min) · clip((d_t - lo) / max(hi - lo, range_eps), 0, 1)
    w_t   = λ for positive tokens, 1 for tokens that are neither

``gate="paper"`` gates over every negative (the paper, the released code). ``gate="off_span"``
gives in-span negatives w_min and gates over the rest: a wrong answer sharing a prefix with a
right one has a positive's exact hidden state there, and on short answers such tokens are most
negatives, which collapses the paper's quantiles. The rank cut keeps duplicated positives and
float noise from defining directions.

Groups without positives, negatives or ``min_pos_tokens`` positive tokens are not weighted (all
weights 1; the released code kept λ there). Gated negatives without spread get (w_min + 1)/2.

Steps: ``group_positives`` -> ``subspace.positive_subspace`` -> ``weigh_negatives``;
``resrl_batch.resrl_groups_weights`` runs them for many groups, with their exact SVDs in one call.

Notation:
    N  tokens of one group (policy tokens only)       H  hidden size
    M  positive tokens used (after sampling, <= m)    k  rank of the positive subspace
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from resrl_agents.trainers.subspace import positive_subspace

__all__ = ["GATES", "GroupStats", "Positives", "group_positives", "resrl_group_weights", "weigh_negatives"]

LN_EPS = 1e-5
GATES = ("off_span", "paper")


@dataclass(frozen=True)
class GroupStats:
    """What happened to one group: scalars for metrics, per-token tensors for inspection."""

    weighted: bool  # False: fallback, every weight 1
    reason: str  # "" | "no_pos" | "no_neg" | "few_pos_tokens"
    rank: int  # k actually used (0 in fallback)
    mean_residual: float  # mean d over the negatives (nan in fallback)
    mean_neg_weight: float  # mean w over the negatives (1 in fallback, nan without negatives)
    degenerate: bool = False  # the gated negatives had no spread: they got the midpoint
    n_neg: int = 0  # negative tokens
    n_in_span: int = 0  # negatives inside the positive span
    residual: Tensor | None = field(default=None, compare=False, repr=False)  # (N,) d, nan off pos/neg
    in_span: Tensor | None = field(default=None, compare=False, repr=False)  # (N,) bool, in-span negatives


def _coincides(Y: Tensor, P: Tensor, bound: Tensor, chunk: int = 1 << 22) -> Tensor:
    """``(n,)`` bool: row i of ``Y (n, H)`` lies within ``bound[i]`` (squared) of a row of ``P (p, H)``.
    The nearest row is found with matmul distances, then its distance is taken exactly (the
    matmul form loses ~1e-7·‖y‖² to cancellation, as much as the bound itself)."""
    step = max(1, chunk // max(P.shape[0], 1))
    near = torch.cat([torch.cdist(Y[i:i + step], P).argmin(dim=1) for i in range(0, Y.shape[0], step)])  # (n,)
    return ((Y - P[near]) ** 2).sum(dim=1) <= bound


def _quantile_gate(d: Tensor, w_min: float, q_lo: float, q_hi: float, range_eps: float,
                   degenerate_eps: float) -> tuple[Tensor, bool]:
    """Group-relative map of residual energies ``d (Nn,)`` to weights in [w_min, 1]."""
    lo, hi = torch.quantile(d, q_lo), torch.quantile(d, q_hi)
    if hi - lo < degenerate_eps:  # no spread to rank by: every negative gets the midpoint
        return torch.full_like(d, (w_min + 1.0) / 2.0), True
    rng = torch.clamp(hi - lo, min=range_eps)
    return w_min + (1.0 - w_min) * ((d - lo) / rng).clamp(0.0, 1.0), False


class Positives(NamedTuple):
    """A weighted group's positive side: what its subspace is fitted to."""

    pos_idx: Tensor  # (P,) every positive token
    neg_idx: Tensor  # (Nn,) every negative token
    Xc: Tensor  # (M, H) LN(h) of the sampled positives, centred
    mu: Tensor  # (H,) their mean, the positive centroid
    k: int  # min(rank, M - 1, H): the most directions the subspace keeps


def group_positives(h: Tensor, pos: Tensor, neg: Tensor, *, rank: int, max_pos_tokens: int, min_pos_tokens: int,
                    residual_norm: str, gate: str, seed: int) -> Positives | tuple[Tensor, GroupStats]:
    """First step of :func:`resrl_group_weights`: checks, then the group's :class:`Positives`, or
    the fallback's weights and stats when it is not weighted."""
    if residual_norm not in ("normalized", "hidden_size"):
        raise ValueError(f"residual_norm must be 'normalized' or 'hidden_size', got {residual_norm!r}")
    if gate not in GATES:
        raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
    if bool((pos & neg).any()):
        raise ValueError("a token cannot be both positive and negative")
    bad = int((~torch.isfinite(h[pos | neg])).any(dim=1).sum())
    if bad:
        raise FloatingPointError(f"non-finite hidden states in {bad} of {int((pos | neg).sum())} policy tokens")
    dtype = torch.float64 if h.dtype == torch.float64 else torch.float32
    N, H = h.shape
    pos_idx, neg_idx = pos.nonzero().squeeze(1), neg.nonzero().squeeze(1)  # (P,), (Nn,)
    Nn = neg_idx.numel()
    reason = "no_pos" if not pos_idx.numel() else "no_neg" if not Nn else \
        "few_pos_tokens" if pos_idx.numel() < min_pos_tokens else ""
    if reason:  # fallback: no weighting at all, no λ either
        w = torch.ones(N, dtype=dtype, device=h.device)  # (N,)
        return w, GroupStats(False, reason, 0, math.nan, 1.0 if Nn else math.nan, n_neg=Nn)
    sample = pos_idx
    if pos_idx.numel() > max_pos_tokens:  # uniform sample without replacement, seeded per group
        pick = torch.randperm(pos_idx.numel(), generator=torch.Generator().manual_seed(seed))[:max_pos_tokens]
        sample = pos_idx[pick.to(pos_idx.device)]
    M = sample.numel()
    X = F.layer_norm(h[sample].to(dtype), (H,), eps=LN_EPS)  # (M, H)
    mu = X.mean(dim=0)  # (H,)
    return Positives(pos_idx, neg_idx, X - mu, mu, min(rank, M - 1, H))


def weigh_negatives(h: Tensor, p: Positives, V_k: Tensor, *, w_min: float, lam: float, q_lo: float,
                    q_hi: float, range_eps: float, degenerate_eps: float, residual_norm: str, gate: str,
                    span_tol: float) -> tuple[Tensor, GroupStats]:
    """Last step of :func:`resrl_group_weights`: residuals outside ``V_k (H, k)``, the in-span test, the gate."""
    dtype, (N, H), neg_idx, Nn = p.mu.dtype, h.shape, p.neg_idx, p.neg_idx.numel()
    idx = torch.cat([neg_idx, p.pos_idx])  # negatives, then every positive (for inspection)
    Y = F.layer_norm(h[idx].to(dtype), (H,), eps=LN_EPS)  # (Nn + P, H)
    hc = Y - p.mu  # (Nn + P, H)
    r = hc - (hc @ V_k) @ V_k.T  # (Nn + P, H)
    r2, hc2 = (r * r).sum(dim=1), (hc * hc).sum(dim=1)  # (Nn + P,)
    # hc == 0 (the token IS the centroid) gives r == 0: d = 0, in span
    d_all = r2 / (hc2.clamp_min(torch.finfo(dtype).tiny) if residual_norm == "normalized" else H)
    d = d_all[:Nn]  # (Nn,)
    in_span = torch.zeros(Nn, dtype=torch.bool, device=h.device)
    if gate == "off_span":  # inside the rank-k subspace, or exactly a positive token's state
        bound = span_tol * hc2[:Nn]  # (Nn,)
        in_span = (r2[:Nn] <= bound) | _coincides(Y[:Nn], Y[Nn:], bound)

    w_neg = torch.full_like(d, w_min)  # in-span negatives keep w_min
    degenerate = False
    if bool((~in_span).any()):
        w_neg[~in_span], degenerate = _quantile_gate(d[~in_span], w_min, q_lo, q_hi, range_eps, degenerate_eps)
    w = torch.ones(N, dtype=dtype, device=h.device)  # (N,)
    w[neg_idx] = w_neg
    w[p.pos_idx] = lam  # every positive token, sampled into X or not
    residual = torch.full((N,), math.nan, dtype=dtype, device=h.device).index_copy_(0, idx, d_all)
    span_mask = torch.zeros(N, dtype=torch.bool, device=h.device).index_copy_(0, neg_idx, in_span)
    return w, GroupStats(True, "", V_k.shape[1], float(d.mean()), float(w_neg.mean()), degenerate, Nn,
                         int(in_span.sum()), residual, span_mask)


def resrl_group_weights(
    h: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    rank: int = 64,
    rank_tol: float = 1e-3,
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
    gate: str = "off_span",
    span_tol: float = 1e-6,
    seed: int,
) -> tuple[Tensor, GroupStats]:
    """Token weights ``(N,)`` of ONE prompt group from hidden states ``h (N, H)``.

    ``pos``/``neg`` ``(N,)`` bool mark tokens of positive / negative responses. Computed in
    float32 (float64 if ``h`` is float64) and returned in that dtype on ``h``'s device. Raises
    ``FloatingPointError`` when a positive or negative token's hidden state is not finite.
    """
    p = group_positives(h, pos, neg, rank=rank, max_pos_tokens=max_pos_tokens, min_pos_tokens=min_pos_tokens,
                        residual_norm=residual_norm, gate=gate, seed=seed)
    if not isinstance(p, Positives):
        return p  # not weighted
    V_k = positive_subspace(p.Xc, p.k, niter, seed, rank_tol)  # (H, k')
    return weigh_negatives(h, p, V_k, w_min=w_min, lam=lam, q_lo=q_lo, q_hi=q_hi, range_eps=range_eps,
                           degenerate_eps=degenerate_eps, residual_norm=residual_norm, gate=gate, span_tol=span_tol)
