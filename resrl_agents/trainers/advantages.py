"""Sequence-level advantage estimators and reward shaping, as pure tensor functions.

Every function works on flat per-row tensors (N = rows / sequences). Rows of one prompt group
share a ``group_id``; they need not be contiguous. Group statistics are computed with
``torch.unique(return_inverse=True)`` plus scatter sums, never with Python loops.

Estimators (``ESTIMATORS``), with ``s`` the row's success (the env's ``won``; see
``algo.success``), the one definition of "positive" every estimator and ResRL share:
  grpo         A = (r - mean_g) / (std_g + eps), unbiased std (Shao et al. 2024);
               ``norm_std=False`` gives Dr.GRPO's A = r - mean_g (Liu et al. 2025).
               Group statistics are taken in float64, and a group whose rewards are all equal
               gets exactly A = 0 (in float32, eight rewards of 0.7 gave A = +0.056 each).
  w_reinforce  A = λ if s else -1, no group normalisation (Zhu et al. 2025).
  nsr          A = 0 if s else -1 (negative-sample reinforcement, Zhu et al. 2025).
  psr          A = +1 if s else 0 (positive-sample reinforcement, Zhu et al. 2025).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = [
    "ESTIMATORS",
    "group_advantages",
    "informative_groups",
    "length_scaled_reward",
    "overlong_penalty",
]


def _float(x: Tensor) -> Tensor:
    """Rewards may arrive as ints or bools; advantages are float."""
    return x if x.is_floating_point() else x.to(torch.float32)


def _group_index(group_id: Tensor) -> tuple[Tensor, Tensor]:
    """Dense group index of each row ``(N,)`` and the size of every group ``(G,)``."""
    _, inv = torch.unique(group_id, return_inverse=True)  # inv: (N,) in [0, G)
    counts = torch.bincount(inv)  # (G,)
    return inv, counts


def _grpo(reward: Tensor, success: Tensor, group_id: Tensor, *, norm_std: bool, lam: float, eps: float) -> Tensor:
    r = reward.to(torch.float64)  # (N,) float64: r - mean must not be rounding noise
    inv, counts = _group_index(group_id)
    n = counts.to(r.dtype)  # (G,)
    mean_g = torch.zeros_like(n).index_add_(0, inv, r) / n  # (G,)
    centred = r - mean_g[inv]  # (N,)
    if norm_std:
        ss_g = torch.zeros_like(n).index_add_(0, inv, centred * centred)  # (G,)
        std_g = torch.sqrt(ss_g / (n - 1).clamp_min(1))  # (G,) unbiased
        centred = centred / (std_g[inv] + eps)  # (N,)
    spread = informative_groups(r, group_id)  # (N,) False: equal rewards (or a lone row)
    return torch.where(spread, centred, torch.zeros_like(centred)).to(_float(reward).dtype)


def _w_reinforce(reward: Tensor, success: Tensor, group_id: Tensor, *, norm_std: bool, lam: float, eps: float) -> Tensor:
    r = _float(reward)
    return torch.where(success, torch.full_like(r, lam), torch.full_like(r, -1.0))


def _nsr(reward: Tensor, success: Tensor, group_id: Tensor, *, norm_std: bool, lam: float, eps: float) -> Tensor:
    r = _float(reward)
    return torch.where(success, torch.zeros_like(r), torch.full_like(r, -1.0))


def _psr(reward: Tensor, success: Tensor, group_id: Tensor, *, norm_std: bool, lam: float, eps: float) -> Tensor:
    r = _float(reward)
    return torch.where(success, torch.ones_like(r), torch.zeros_like(r))


Estimator = Callable[..., Tensor]
ESTIMATORS: dict[str, Estimator] = {
    "grpo": _grpo,
    "w_reinforce": _w_reinforce,
    "nsr": _nsr,
    "psr": _psr,
}


def group_advantages(
    reward: Tensor,
    group_id: Tensor,
    *,
    estimator: str,
    success: Tensor | None = None,
    norm_std: bool = True,
    lam: float = 0.1,
    eps: float = 1e-6,
) -> Tensor:
    """Sequence advantage of every row, ``(N,)``, from its reward ``(N,)`` and ``group_id (N,)``.

    ``success (N,)`` bool is who counts as correct (default ``reward > 0``; the trainer passes the
    episodes' success, see ``algo.success``). ``norm_std`` matters only to ``grpo``; ``lam`` only
    to ``w_reinforce``. Raises ``FloatingPointError`` on a non-finite reward, naming its row.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; valid: {sorted(ESTIMATORS)}")
    if reward.shape != group_id.shape or reward.dim() != 1:
        raise ValueError(f"reward {tuple(reward.shape)} and group_id {tuple(group_id.shape)} must be (N,)")
    bad = (~torch.isfinite(_float(reward))).nonzero().flatten().tolist()
    if bad:
        raise FloatingPointError(f"non-finite reward in row(s) {bad[:8]} (groups {group_id[bad[:8]].tolist()})")
    success = reward > 0 if success is None else success.bool()
    return ESTIMATORS[estimator](reward, success, group_id, norm_std=norm_std, lam=lam, eps=eps)


def length_scaled_reward(
    reward: Tensor,
    length: Tensor,
    *,
    max_len: int,
    start_frac: float = 0.875,
    min_scale: float = 0.7,
) -> Tensor:
    """Scale positive rewards down for long responses (the ResRL code's length shaping).

    factor(L) = 1 for L <= s = start_frac·max_len, falls linearly to ``min_scale`` at ``max_len``
    and stays there beyond. Rewards <= 0 are returned unchanged, so shaping never flips a sign.
    """
    r = _float(reward)  # (N,)
    L = length.to(r.dtype)  # (N,)
    start = start_frac * max_len
    span = max_len - start
    if span > 0:
        frac = ((L - start) / span).clamp(0.0, 1.0)  # (N,) 0 before the ramp, 1 at/after max_len
    else:  # no ramp: a step at max_len
        frac = (L > max_len).to(r.dtype)
    factor = 1.0 - (1.0 - min_scale) * frac  # (N,)
    return torch.where(r > 0, r * factor, r)


def overlong_penalty(
    length: Tensor,
    *,
    max_len: int,
    buffer_len: int,
    penalty: float = 1.0,
) -> Tensor:
    """DAPO's soft overlong punishment (Yu et al. 2025, §3.4), to be added to the reward.

    0 for L <= max_len - buffer_len, linear down to -penalty at max_len, -penalty beyond.
    ``buffer_len == 0`` turns it off (all zeros).
    """
    L = length.to(torch.float32)  # (N,)
    if buffer_len <= 0:
        return torch.zeros_like(L)
    expected = max_len - buffer_len
    frac = ((L - expected) / buffer_len).clamp(0.0, 1.0)  # (N,)
    return -penalty * frac


def informative_groups(reward: Tensor, group_id: Tensor) -> Tensor:
    """``(N,)`` bool: rows whose group's rewards are not all identical (DAPO dynamic sampling).

    A group with identical rewards has zero GRPO advantage everywhere and only dilutes the batch.
    """
    r = _float(reward)  # (N,)
    inv, counts = _group_index(group_id)
    G = counts.numel()
    hi = r.new_full((G,), float("-inf")).scatter_reduce_(0, inv, r, "amax")  # (G,) max reward
    lo = r.new_full((G,), float("inf")).scatter_reduce_(0, inv, r, "amin")  # (G,) min reward
    return (hi > lo)[inv]
