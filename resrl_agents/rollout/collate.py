"""Trajectories -> a padded training :class:`Batch`, without re-tokenizing anything."""

from __future__ import annotations

from typing import Sequence

import torch

from resrl_agents.rollout.agent_loop import Layout
from resrl_agents.rollout.types import Batch, Trajectory


def trajectory_rows(traj: Trajectory, layout: Layout) -> list[tuple[list[int], list[int], list[float]]]:
    """(ids, loss_mask, logp) rows of one trajectory: one row (full) or one per turn (window)."""
    if layout.kind == "full":
        return [(traj.token_ids(), traj.loss_mask(), traj.sample_logp())]
    return [
        (list(t.obs_ids) + list(t.action_ids), [0] * len(t.obs_ids) + [1] * len(t.action_ids),
         [0.0] * len(t.obs_ids) + list(t.action_logp))
        for t in traj.turns
    ]


def rollout_hidden(trajs: Sequence[Trajectory]) -> torch.Tensor | None:
    """``(N, H)`` the rollout's hidden state of each policy token of ``collate(trajs)`` (at the policy's hidden_position),
    in the row-major order of its loss mask (turn after turn, row after row, in either layout);
    None when a turn has none (the policy did not capture them)."""
    hidden = [t.action_hidden for traj in trajs for t in traj.turns]
    if not hidden or any(h is None for h in hidden):
        return None
    return torch.cat(hidden)


def collate(trajs: Sequence[Trajectory], reward: Sequence[float], seq_adv: Sequence[float], *,
            history: str, pad_id: int, success: Sequence[bool] | None = None) -> Batch:
    """Rows of the trajectories in the given order (keep groups contiguous), right-padded.

    ``reward`` / ``seq_adv`` / ``success`` (default: each episode's ``won``) are per trajectory;
    every row of a trajectory carries its values (in ``window:k`` each turn-sample gets the
    episode's return, advantage and success).
    """
    layout = Layout.parse(history)
    success = [t.won for t in trajs] if success is None else success
    rows, row_reward, row_adv, row_group, row_success = [], [], [], [], []
    for traj, r, a, s in zip(trajs, reward, seq_adv, success, strict=True):
        for row in trajectory_rows(traj, layout):
            rows.append(row)
            row_reward.append(r)
            row_adv.append(a)
            row_group.append(traj.group_id)
            row_success.append(bool(s))
    T = max((len(ids) for ids, _, _ in rows), default=0)
    B = len(rows)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    loss_mask = torch.zeros((B, T))
    logp = torch.zeros((B, T))
    for i, (ids, mask, lp) in enumerate(rows):
        n = len(ids)
        input_ids[i, :n] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, :n] = 1
        loss_mask[i, :n] = torch.tensor(mask, dtype=torch.float)
        logp[i, :n] = torch.tensor(lp, dtype=torch.float)
    return Batch(
        input_ids=input_ids, attention_mask=attention_mask, loss_mask=loss_mask, logp_sample=logp,
        reward=torch.tensor(row_reward, dtype=torch.float), seq_adv=torch.tensor(row_adv, dtype=torch.float),
        group_id=torch.tensor(row_group, dtype=torch.long), response_len=loss_mask.sum(1).long(),
        success=torch.tensor(row_success, dtype=torch.bool),
    )
