"""Typed rollout data. Token ids are stored exactly as generated / tokenized once; nothing here
re-tokenizes text.

Notation: B = rows in a batch (sequences), T = padded tokens per row, G = trajectories per group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Turn:
    """One agent turn: context tokens that arrived before it, then the tokens the policy sampled.

    ``obs_ids`` are prompt / observation / chat-template tokens (loss mask 0), tokenized once when
    they arrived. ``action_ids`` are the exact ids the policy generated (loss mask 1) and
    ``action_logp`` their sampling log-probs, same length. ``action_hidden`` ``(n, H)``, when the
    policy captured it, is the hidden state of each action token (for ResRL, at its hidden_position).
    """

    obs_ids: tuple[int, ...]
    action_ids: tuple[int, ...]
    action_logp: tuple[float, ...]
    obs_text: str = ""
    action_text: str = ""
    reward: float = 0.0
    invalid: bool = False
    clipped: bool = False  # the reply hit max_new_tokens before EOS (cut, not finished)
    action_hidden: torch.Tensor | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Trajectory:
    """A whole episode. ``group_id`` is shared by the G episodes started from the same task/seed."""

    group_id: int
    task_id: str
    seed: int
    turns: tuple[Turn, ...]
    reward: float  # episode return used for advantages
    terminated: bool
    truncated: bool
    family: str = ""
    won: bool = False
    error: str = ""  # non-empty when the env crashed; the trajectory is kept and marked
    messages: tuple[dict, ...] = ()  # the conversation as chat messages (for drift checks, eval, SFT)
    tools: tuple[dict, ...] | None = None  # OpenAI tool schemas the template rendered, if any
    info: dict[str, Any] = field(default_factory=dict)  # scalar extras for metrics only

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    def token_ids(self) -> list[int]:
        """Full sequence: obs_0, act_0, obs_1, act_1, ... (the ``full`` history layout)."""
        ids: list[int] = []
        for t in self.turns:
            ids += t.obs_ids
            ids += t.action_ids
        return ids

    def loss_mask(self) -> list[int]:
        """1 exactly on policy-generated tokens."""
        mask: list[int] = []
        for t in self.turns:
            mask += [0] * len(t.obs_ids)
            mask += [1] * len(t.action_ids)
        return mask

    def sample_logp(self) -> list[float]:
        """Sampling log-prob per token (0.0 on context tokens)."""
        logp: list[float] = []
        for t in self.turns:
            logp += [0.0] * len(t.obs_ids)
            logp += list(t.action_logp)
        return logp

    @property
    def response_length(self) -> int:
        return sum(len(t.action_ids) for t in self.turns)

    @property
    def cut(self) -> bool:
        """Truncated by the turn or context cap, or with a reply cut at ``max_new_tokens``: the
        episode did not end on its own (what ``rollout/truncated`` counts)."""
        return self.truncated or any(t.clipped for t in self.turns)


@dataclass(frozen=True)
class TrajectoryGroup:
    """G trajectories of one task started from the same seed."""

    group_id: int
    trajectories: tuple[Trajectory, ...]

    @property
    def rewards(self) -> list[float]:
        return [t.reward for t in self.trajectories]


@dataclass
class Batch:
    """Collated training rows, right-padded. Whole groups, rows of a group contiguous.

    Fields (B rows, T tokens):
      input_ids      (B, T) long   token ids, pad = ``pad_id``
      attention_mask (B, T) long   1 on real tokens
      loss_mask      (B, T) float  1 exactly on policy-generated tokens
      logp_sample    (B, T) float  sampling log-prob of token t (0 where loss_mask == 0)
      reward         (B,)   float  sequence reward after shaping
      seq_adv        (B,)   float  advantage of the row's trajectory (before ResRL weighting)
      group_id       (B,)   long   stable id of the row's prompt group (same task, same seed)
      response_len   (B,)   long   number of policy tokens in the row
      adv            (B, T) float  per-token advantage (filled by the trainer)
      logp_old       (B, T) float  log-prob under the policy before the update (filled by the trainer)
      weight         (B, T) float  ResRL per-token weight (1 where not weighted)
      success        (B,)   bool   the row's episode succeeded (``algo.success``): who is positive
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    logp_sample: torch.Tensor
    reward: torch.Tensor
    seq_adv: torch.Tensor
    group_id: torch.Tensor
    response_len: torch.Tensor
    adv: torch.Tensor | None = None
    logp_old: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    success: torch.Tensor | None = None

    @property
    def num_rows(self) -> int:
        return self.input_ids.shape[0]

    @property
    def num_groups(self) -> int:
        return int(torch.unique_consecutive(self.group_id).numel())

    def rows(self, idx: torch.Tensor) -> "Batch":
        """Sub-batch of the given row indices (for micro-batching)."""
        pick = lambda x: None if x is None else x[idx]  # noqa: E731
        return Batch(**{k: pick(v) for k, v in self.__dict__.items()})
