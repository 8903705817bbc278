"""ResRL weights of several prompt groups in one go: :func:`resrl_group_weights`'s results,
with the exact SVDs of all groups in one batched call.

On CUDA the weighting of one group is a few hundred kernel launches, most of them inside the SVD,
which also waits for the device (cuSOLVER's convergence check). When a step's groups complete together
(the rollout kept their states), the groups whose subspace takes the exact SVD (see
``subspace.exact_svd_pays``) share one ``torch.linalg.svd`` over their zero-padded positives. The
randomized SVD stays per group (its test matrix is drawn from each group's seed), and so do the
cheap per-token steps, through the same functions as the per-group path.

Where it pays: on CPU LAPACK factors each matrix anyway and the zero rows add work; batched/looped
was 0.88-0.97 for small groups, 1.02 for eight groups of 500 positives (H = 1024) and 1.15-1.31
when their sizes vary (``benchmarks/resrl_weighting.py --batched``), so ``algo.batch_groups=auto`` batches on CUDA only.
There PyTorch still runs cuSOLVER's gesvdj once per matrix inside the one call (gesvdjBatched
only for matrices up to 32 x 32): the saving is the launches and host syncs around it, not yet
measured on a GPU (``benchmarks/gpu_checks.sh`` does it).
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Mapping

from torch import Tensor

from resrl_agents.trainers.resrl import GroupStats, Positives, group_positives, resrl_group_weights, weigh_negatives
from resrl_agents.trainers.subspace import exact_svd_pays, positive_subspace, positive_subspaces_exact

__all__ = ["resrl_groups_weights"]

_FIT = ("rank", "max_pos_tokens", "min_pos_tokens", "residual_norm", "gate")
_WEIGH = ("w_min", "lam", "q_lo", "q_hi", "range_eps", "degenerate_eps", "residual_norm", "gate", "span_tol")


def _knobs(kw: dict) -> dict:
    """``kw`` over :func:`resrl_group_weights`'s defaults (one place for them); an unknown key is a TypeError."""
    bound = inspect.signature(resrl_group_weights).bind(None, None, None, seed=0, **kw)
    bound.apply_defaults()
    return bound.arguments


def resrl_groups_weights(groups: Mapping[int, tuple[Tensor, Tensor, Tensor]], seeds: Mapping[int, int], *,
                         batch: bool = True, **kw) -> dict[int, tuple[Tensor, GroupStats]]:
    """``{g: resrl_group_weights(h, pos, neg, seed=seeds[g], **kw)}`` for every group ``g: (h, pos, neg)``.

    ``batch``: the exact SVDs of groups with the same hidden size, dtype and device share one call
    (equal results up to float rounding); without it, exactly the per-group loop. Errors name the group.
    """
    knobs = _knobs(kw)
    fits: dict[int, Positives | tuple[Tensor, GroupStats]] = {}
    for g, (h, pos, neg) in groups.items():
        try:
            fits[g] = group_positives(h, pos, neg, seed=seeds[g], **{k: knobs[k] for k in _FIT})
        except FloatingPointError as e:
            raise FloatingPointError(f"ResRL weights of group {g}: {e}") from None
    fitted = {g: p for g, p in fits.items() if isinstance(p, Positives)}
    bases: dict[int, Tensor] = {}  # g -> V_k (H, k'), from the batched SVDs
    if batch:
        same = defaultdict(list)  # groups that can share one SVD call
        for g, p in fitted.items():
            if p.k > 0 and exact_svd_pays(*p.Xc.shape, p.k, knobs["niter"]):
                same[p.Xc.dtype, p.Xc.device, p.Xc.shape[1]].append(g)
        for gs in same.values():
            Vs = positive_subspaces_exact([fitted[g].Xc for g in gs], [fitted[g].k for g in gs], knobs["rank_tol"])
            bases |= zip(gs, Vs)
    out = {}
    for g, p in fits.items():
        if not isinstance(p, Positives):
            out[g] = p  # not weighted
            continue
        V_k = bases[g] if g in bases else positive_subspace(p.Xc, p.k, knobs["niter"], seeds[g], knobs["rank_tol"])
        out[g] = weigh_negatives(groups[g][0], p, V_k, **{k: knobs[k] for k in _WEIGH})
    return out
