"""The positive subspace of ResRL (``trainers/resrl.py``): the top right singular vectors of a
group's centred positive states, cut at its numerical rank, per group or for several groups in
one call.

Notation:
    B  groups      M  positive tokens of a group (after sampling)      H  hidden size
    k  most directions kept (min(rank, M - 1, H))                       q  directions the randomized SVD keeps
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

__all__ = ["OVERSAMPLE", "exact_svd_pays", "positive_subspace", "positive_subspaces_exact", "rank_cut"]

OVERSAMPLE = 8  # extra random directions of the randomized SVD (Halko et al. 2009: 5..10)


def exact_svd_pays(M: int, H: int, k: int, niter: int) -> bool:
    """Whether an exact SVD of ``(M, H)`` costs no more flops than the randomized one (which keeps
    ``q = k + OVERSAMPLE`` directions and makes ``2·niter + 2`` passes); exact is also seed-free."""
    return min(M, H) <= (2 * niter + 2) * min(k + OVERSAMPLE, M, H)


def rank_cut(sigma: Tensor, k: Tensor, rank_tol: float) -> Tensor:
    """Directions kept, ``#{i < k : σ_i >= rank_tol·σ_1 > 0}``, for descending ``sigma (..., r)``, ``k (...)``."""
    i = torch.arange(sigma.shape[-1], device=sigma.device)  # (r,)
    top = sigma[..., :1]  # (..., 1)
    return ((sigma >= rank_tol * top) & (top > 0) & (i < k.unsqueeze(-1))).sum(-1)


def positive_subspace(X: Tensor, k: int, niter: int, seed: int, rank_tol: float) -> Tensor:
    """Right singular vectors ``V_k (H, k')`` of the centred positives ``X (M, H)`` with σ_i >=
    rank_tol·σ_1, k' <= k; exact where :func:`exact_svd_pays`, else ``torch.svd_lowrank`` (of
    ``XᵀX (H, H)`` when that is cheaper, M >> H) with a test matrix drawn from ``seed``."""
    M, H = X.shape
    if k == 0:
        return X.new_zeros(H, 0)
    q = min(k + OVERSAMPLE, M, H)
    if exact_svd_pays(M, H, k, niter):
        _, sigma, Vh = torch.linalg.svd(X, full_matrices=False)  # sigma (min(M,H),), Vh (min(M,H), H)
        V = Vh.T
    else:
        use_gram = M > H and M * H * H < (2 * niter + 2) * M * H * q
        A = X.T @ X if use_gram else X  # (H, H) or (M, H)
        # its test matrix comes from the global RNG: fork it (result depends on group and seed only)
        devices = [X.device] if X.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            _, S, V = torch.svd_lowrank(A, q=q, niter=niter)  # V: (H, q)
        sigma = S.clamp_min(0).sqrt() if use_gram else S  # the Gram's singular values are σ²
    return V[:, :int(rank_cut(sigma, torch.tensor(k, device=sigma.device), rank_tol))]  # (H, k')


def positive_subspaces_exact(Xs: Sequence[Tensor], ks: Sequence[int], rank_tol: float) -> list[Tensor]:
    """:func:`positive_subspace`'s exact path for B groups in one ``torch.linalg.svd`` call.

    The ``Xs[b] (M_b, H)`` (same H, dtype and device) are padded with zero rows to ``(B, M_max, H)``:
    zero rows leave the non-zero singular values and their right singular vectors unchanged, and
    add σ = 0, which the rank cut drops. Each group keeps its own k and σ_1. Returns ``V_k (H, k'_b)``
    per group: equal to the per-group result up to float rounding (and the sign of each vector).
    """
    X = pad_sequence(list(Xs), batch_first=True)  # (B, M_max, H)
    _, sigma, Vh = torch.linalg.svd(X, full_matrices=False)  # (B, r), (B, r, H), r = min(M_max, H)
    keep = rank_cut(sigma, torch.tensor(list(ks), device=sigma.device), rank_tol).tolist()  # (B,), one sync
    return [Vh[b, :n].T for b, n in enumerate(keep)]  # (H, k'_b) each
