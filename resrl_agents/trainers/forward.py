"""The forwards of a training step and what they feed: old log-probs, reference log-probs and
the ResRL weights, all from passes the step makes anyway.

ResRL reads the penultimate-layer hidden states through a hook, either of the rollout's own
decode forwards (``rollout_weights``: every group is complete when the rollout ends) or of this
module's no-grad scoring pass (``score_batch``), which visits rows in batch order, buffers
policy-token hidden states per group and weights a group the moment its last row has been scored.
Either way weights see the whole group, never whatever shares a micro-batch (ARCHITECTURE
invariant 3).

Shared prompts: a group's G rows begin with the same prompt. With ``share_prefix`` a forward
holds rows of one group, runs their common context once and lets every row attend to its
keys/values (``causal_logits(..., prefix=p)``); gradients flow back into the shared part.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from resrl_agents.models.hooks import capture_hidden
from resrl_agents.rollout.types import Batch
from resrl_agents.trainers.loss import token_logp
from resrl_agents.trainers.resrl import GATES, GroupStats
from resrl_agents.trainers.resrl_batch import resrl_groups_weights

__all__ = ["ResRLSettings", "Scores", "capture_hidden", "causal_logits", "forward_chunks", "hidden_cols",
           "micro_batches", "policy_tokens", "rollout_weights", "score_batch", "shared_prefix_len", "trim"]


@dataclass(frozen=True)
class ResRLSettings:
    """The ResRL knobs of ``AlgoConfig`` (see there), handed to ``resrl_groups_weights``."""

    rank: int
    rank_tol: float
    max_pos_tokens: int
    min_pos_tokens: int
    w_min: float
    lam: float
    q_lo: float
    q_hi: float
    niter: int
    residual_norm: str
    gate: str  # "off_span" | "paper"
    span_tol: float
    hidden_layer: int
    hidden_position: str  # "predicting": the state at t-1 weighs token t | "own": the state at t
    batch_groups: str  # "auto" (on CUDA) | "on" | "off": one batched SVD for groups that complete together

    @classmethod
    def from_algo(cls, algo) -> "ResRLSettings":
        """The ResRL fields of an ``AlgoConfig`` (one source of the values: the config)."""
        return cls(**{k: getattr(algo, k) for k in cls.__dataclass_fields__})

    def kwargs(self) -> dict:
        keys = ("rank", "rank_tol", "max_pos_tokens", "min_pos_tokens", "w_min", "lam", "q_lo", "q_hi", "niter",
                "residual_norm", "gate", "span_tol")
        return {k: getattr(self, k) for k in keys}

    def __post_init__(self):
        if self.hidden_position not in ("predicting", "own"):
            raise ValueError(f"algo.hidden_position must be 'predicting' or 'own', got {self.hidden_position!r}")
        if self.gate not in GATES:
            raise ValueError(f"algo.gate must be one of {', '.join(GATES)}, got {self.gate!r}")
        if self.batch_groups not in ("auto", "on", "off"):
            raise ValueError(f"algo.batch_groups must be auto, on or off, got {self.batch_groups!r}")

    def batched(self, device: torch.device) -> bool:
        """Whether groups that complete together share one SVD call: by default on CUDA only, where
        it saves launches and syncs; on CPU the per-group loop is faster (``resrl_batch``)."""
        return self.batch_groups == "on" or (self.batch_groups == "auto" and device.type == "cuda")


def micro_batches(lengths: torch.Tensor, size: int, max_tokens: int | None = None) -> list[torch.Tensor]:
    """Consecutive runs of row positions: at most ``size`` rows, and with ``max_tokens`` at most
    that many padded tokens (rows x longest row; a longer row goes alone), so memory per
    forward stays bounded when episode lengths vary."""
    out, start, longest = [], 0, 0  # the open run: rows start..i-1, its longest row
    for i, n in enumerate(lengths.tolist()):
        grown = max(longest, n)
        if i > start and (i - start >= size or (max_tokens is not None and (i - start + 1) * grown > max_tokens)):
            out.append(torch.arange(start, i))
            start, grown = i, n
        longest = grown
    if start < len(lengths):
        out.append(torch.arange(start, len(lengths)))
    return out


def forward_chunks(lengths: torch.Tensor, group_id: torch.Tensor, size: int, max_tokens: int | None = None,
                   by_group: bool = False) -> list[torch.Tensor]:
    """Row positions of each forward, longest rows first (less padding per forward); with
    ``by_group`` a forward holds rows of one group only (they share a prompt, see
    :func:`shared_prefix_len`), groups in order of first appearance."""
    if not by_group:
        order = torch.argsort(lengths, descending=True, stable=True)
        return [order[c] for c in micro_batches(lengths[order], size, max_tokens)]
    out = []
    for g in dict.fromkeys(group_id.tolist()):
        rows = (group_id == g).nonzero().squeeze(1)
        rows = rows[torch.argsort(lengths[rows], descending=True, stable=True)]
        out += [rows[c] for c in micro_batches(lengths[rows], size, max_tokens)]
    return out


def shared_prefix_len(input_ids: torch.Tensor, loss_mask: torch.Tensor, lengths: torch.Tensor) -> int:
    """How many leading tokens a forward of these rows ``(b, t)`` can run once for all of them:
    the tokens every row shares, none of them a policy token, less the last one (whose output
    predicts the first token that may differ, so it runs with each row). 0 for a single row."""
    if input_ids.shape[0] < 2:
        return 0
    n = int(lengths.min())
    same = (input_ids[:, :n] == input_ids[:1, :n]).all(0)  # (n,)
    lcp = int(same.long().cumprod(0).sum())
    policy_cols = loss_mask.bool().any(0).nonzero()
    first_policy = int(policy_cols[0]) if len(policy_cols) else input_ids.shape[1]
    return max(min(lcp, first_policy) - 1, 0)


def causal_logits(model, input_ids: torch.Tensor, prefix: int = 0) -> torch.Tensor:
    """``(B, T - prefix, V)`` logits at positions ``prefix..T-1`` of right-padded rows, without a
    padding mask.

    Causal attention never lets a real token see the padding after it, so real positions get the
    same outputs as with the mask, and attention takes SDPA's causal path, which skips the upper
    triangle (half the work of a masked dense pass) and builds no (B, 1, T, T) mask. Outputs at
    padding positions are garbage and every consumer masks them out (loss mask 0 there).

    ``prefix > 0``: every row starts with the same ``prefix`` tokens. They run once (row 0's),
    without logits, and their keys/values are repeated for each row (a differentiable copy, so
    gradients of every row flow back into the one prefix forward). The rows' part attends through
    the explicit causal mask HF builds for a cache, ``(B, 1, T - prefix, T)``.
    """
    if prefix == 0:
        return model(input_ids=input_ids).logits
    head = model(input_ids=input_ids[:1, :prefix], use_cache=True, logits_to_keep=1)
    cache = head.past_key_values
    cache.batch_repeat_interleave(input_ids.shape[0])  # (1, h, p, d) -> (B, h, p, d) per layer
    pos = torch.arange(prefix, input_ids.shape[1], device=input_ids.device).expand(input_ids.shape[0], -1)
    return model(input_ids=input_ids[:, prefix:], past_key_values=cache, position_ids=pos, use_cache=True).logits


def pad_left(x: torch.Tensor, prefix: int) -> torch.Tensor:
    """``(B, T - prefix)`` per-token values of :func:`causal_logits`'s positions back to ``(B, T)``,
    0 on the shared prefix (no policy token lies there; position ``prefix`` is 0 already)."""
    return F.pad(x, (prefix, 0)) if prefix else x


def policy_tokens(loss_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, col) of every policy token of ``loss_mask (B, T)``, in row-major order: the order
    of ``collate.rollout_hidden``'s states."""
    return loss_mask.bool().nonzero(as_tuple=True)


def hidden_cols(cols: torch.Tensor, position: str) -> torch.Tensor:
    """Column of the hidden state that weighs the token at ``cols`` (``algo.hidden_position``):
    the state that predicts it (t-1, the released code's choice) or its own (t). The one place
    that picks the position in a forward over whole sequences (the rollout keeps the same states,
    ``HFPolicy(hidden_position=...)``)."""
    return cols - 1 if position == "predicting" else cols


def trim(batch: Batch) -> Batch:
    """Drop right-padding columns beyond the longest row of this (micro-)batch."""
    T = int(batch.attention_mask.sum(1).max().item())
    cut = lambda x: x[:, :T] if x is not None and x.dim() == 2 else x  # noqa: E731
    return Batch(**{k: cut(v) for k, v in batch.__dict__.items()})


def row_signs(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(pos, neg) bool per row: the episode's success (``algo.success``), as for every estimator."""
    if batch.success is None:
        raise ValueError("ResRL needs batch.success (who is positive); collate() fills it")
    return batch.success, ~batch.success


class Scores(NamedTuple):
    """Old and reference log-probs, ResRL's weights and what its weighting saw (for inspection)."""

    logp_old: torch.Tensor  # (B, T)
    ref_logp: torch.Tensor | None  # (B, T), with a reference model
    weight: torch.Tensor  # (B, T) ResRL weight, 1 where not weighted
    stats: dict[int, GroupStats]  # group id -> what its weighting did
    residual: torch.Tensor  # (B, T) residual energy d of positive/negative tokens, nan elsewhere
    in_span: torch.Tensor  # (B, T) bool, negatives inside their group's positive span


@dataclass
class _GroupBuffer:
    rows_left: int
    h: list[torch.Tensor]  # (n_i, H) policy-token hidden states per visited row chunk
    where: list[tuple[torch.Tensor, torch.Tensor]]  # (row, col) of those tokens in the batch


def _store(out: Scores, g: int, rows: torch.Tensor, cols: torch.Tensor, w: torch.Tensor, s: GroupStats) -> None:
    """Write group ``g``'s weights ``w (n,)`` and what its weighting saw at its tokens ``(rows, cols)``."""
    out.weight[rows, cols] = w.float().cpu()
    if s.weighted:
        out.residual[rows, cols], out.in_span[rows, cols] = s.residual.float().cpu(), s.in_span.cpu()
    out.stats[g] = s


def _weigh_group(g: int, h: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, batch: Batch, out: Scores,
                 resrl: ResRLSettings, seed: int) -> None:
    """Weight one whole group ``g``: ``h (n, H)`` the states of its policy tokens at ``(rows, cols)``."""
    pos_row, neg_row = row_signs(batch)
    (w, s), = resrl_groups_weights({g: (h, pos_row[rows], neg_row[rows])}, {g: seed}, batch=False,
                                   **resrl.kwargs()).values()
    _store(out, g, rows, cols, w, s)


def _empty_scores(batch: Batch, ref: bool) -> Scores:
    B, T = batch.input_ids.shape
    return Scores(torch.zeros(B, T), torch.zeros(B, T) if ref else None, torch.ones(B, T), {},
                  torch.full((B, T), float("nan")), torch.zeros(B, T, dtype=torch.bool))


def rollout_weights(batch: Batch, hidden: torch.Tensor, resrl: ResRLSettings, group_seed: dict[int, int],
                    device: torch.device) -> Scores:
    """ResRL's weights (in a :class:`Scores` whose ``logp_old`` is the rollout's) from the states
    ``(N, H)`` the rollout kept at ``resrl.hidden_position`` (one per policy token, in
    :func:`policy_tokens` order; see ``collate.rollout_hidden``): no forward. Every group is
    complete, so on CUDA their exact SVDs share one call (``algo.batch_groups``)."""
    rows, cols = policy_tokens(batch.loss_mask)
    if hidden.shape[0] != rows.numel():
        raise ValueError(f"{hidden.shape[0]} rollout hidden states for {rows.numel()} policy tokens")
    out = _empty_scores(batch, ref=False)._replace(logp_old=batch.logp_sample)
    pos_row, neg_row = row_signs(batch)
    tok_group = batch.group_id[rows]
    sel = {g: tok_group == g for g in dict.fromkeys(batch.group_id.tolist())}  # every group is complete
    groups = {g: (hidden[m].to(device), pos_row[rows[m]], neg_row[rows[m]]) for g, m in sel.items()}
    weights = resrl_groups_weights(groups, group_seed, batch=resrl.batched(device), **resrl.kwargs())
    for g, m in sel.items():
        _store(out, g, rows[m], cols[m], *weights[g])
    return out


@torch.no_grad()
def score_batch(model, batch: Batch, *, micro_batch_size: int, temperature: float, device: torch.device,
                resrl: ResRLSettings | None, group_seed: dict[int, int], ref_model=None,
                micro_batch_tokens: int | None = None, share_prefix: bool = False) -> Scores:
    """Old and reference log-probs of every token, and ResRL weights of every whole group.
    ``share_prefix``: forwards of one group's rows, its shared prompt run once."""
    out = _empty_scores(batch, ref=ref_model is not None)
    logp_old, ref_logp = out.logp_old, out.ref_logp
    buffers: dict[int, _GroupBuffer] = {}
    lengths = batch.attention_mask.sum(1)
    chunks = (forward_chunks(lengths, batch.group_id, micro_batch_size, micro_batch_tokens, by_group=True)
              if share_prefix else micro_batches(lengths, micro_batch_size, micro_batch_tokens))
    hook = capture_hidden(model, resrl.hidden_layer) if resrl else contextlib.nullcontext([])
    with hook as captured:
        for idx in chunks:
            mb = trim(batch.rows(idx))
            ids = mb.input_ids.to(device)  # right-padded
            t = ids.shape[1]
            p = shared_prefix_len(mb.input_ids, mb.loss_mask, lengths[idx]) if share_prefix else 0
            logp = token_logp(causal_logits(model, ids, p), ids[:, p:], temperature)  # (b, t - p)
            logp_old[idx, :t] = pad_left(logp, p).float().cpu()
            if ref_model is not None:
                logp = token_logp(causal_logits(ref_model, ids, p), ids[:, p:], temperature)
                ref_logp[idx, :t] = pad_left(logp, p).float().cpu()
            if resrl is None:
                continue
            hidden = captured[-1]  # (b, t - p, H): positions p..t-1
            captured.clear()
            r, c = policy_tokens(mb.loss_mask)
            hc = hidden_cols(c, resrl.hidden_position) - p  # columns of ``hidden``
            rows = idx[r]  # batch row of every policy token
            mb_groups, tok_groups = batch.group_id[idx], batch.group_id[rows]
            for g in mb_groups.unique().tolist():
                buf = buffers.setdefault(g, _GroupBuffer(int((batch.group_id == g).sum()), [], []))
                sel = tok_groups == g
                buf.h.append(hidden[r[sel], hc[sel]])  # (n, H)
                buf.where.append((rows[sel], c[sel]))
                buf.rows_left -= int((mb_groups == g).sum())
                if buf.rows_left == 0:  # the whole group has been scored: weight it now
                    rows_, cols_ = torch.cat([a for a, _ in buf.where]), torch.cat([b for _, b in buf.where])
                    _weigh_group(g, torch.cat(buf.h), rows_, cols_, batch, out, resrl, group_seed[g])
                    del buffers[g]
    return out
