"""The no-grad scoring pass of a training step: old log-probs, reference log-probs and the ResRL
weights, all from passes the step makes anyway.

ResRL reads the penultimate-layer hidden states of this same forward through a hook (no
``output_hidden_states``, which would keep every layer alive). Rows are visited in batch order,
where a group's rows are contiguous; policy-token hidden states are buffered per group and a
group is weighted the moment its last row has been scored, so weights always see the whole
group, never whatever shares a micro-batch (ARCHITECTURE invariant 3).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from resrl_agents.rollout.types import Batch
from resrl_agents.trainers.loss import token_logp
from resrl_agents.trainers.resrl import GroupStats, resrl_group_weights


@dataclass(frozen=True)
class ResRLSettings:
    """The ResRL knobs of ``AlgoConfig`` (see there), handed to :func:`resrl_group_weights`."""

    rank: int
    max_pos_tokens: int
    min_pos_tokens: int
    w_min: float
    lam: float
    q_lo: float
    q_hi: float
    niter: int
    residual_norm: str
    hidden_layer: int
    sign_from: str  # "advantage" | "reward"

    def kwargs(self) -> dict:
        keys = ("rank", "max_pos_tokens", "min_pos_tokens", "w_min", "lam", "q_lo", "q_hi", "niter", "residual_norm")
        return {k: getattr(self, k) for k in keys}


@contextlib.contextmanager
def capture_hidden(model, layer: int) -> Iterator[list[torch.Tensor]]:
    """Capture ``hidden_states[layer]`` (HF convention: 0 = embeddings, L = final norm output)
    of every forward while the context is open, via a forward hook."""
    decoder = model.get_decoder()
    L = len(decoder.layers)
    idx = layer % (L + 1)
    module = decoder.embed_tokens if idx == 0 else decoder.norm if idx == L else decoder.layers[idx - 1]
    out: list[torch.Tensor] = []

    def hook(_mod, _inp, output):
        out.append((output[0] if isinstance(output, tuple) else output).detach())

    handle = module.register_forward_hook(hook)
    try:
        yield out
    finally:
        handle.remove()


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


def causal_logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    """``(B, T, V)`` logits of right-padded rows, without a padding mask.

    Causal attention never lets a real token see the padding after it, so real positions get the
    same outputs as with the mask, and attention takes SDPA's causal path, which skips the upper
    triangle (half the work of a masked dense pass) and builds no (B, 1, T, T) mask. Outputs at
    padding positions are garbage and every consumer masks them out (loss mask 0 there).
    """
    return model(input_ids=input_ids).logits


def trim(batch: Batch) -> Batch:
    """Drop right-padding columns beyond the longest row of this (micro-)batch."""
    T = int(batch.attention_mask.sum(1).max().item())
    cut = lambda x: x[:, :T] if x is not None and x.dim() == 2 else x  # noqa: E731
    return Batch(**{k: cut(v) for k, v in batch.__dict__.items()})


def row_signs(batch: Batch, sign_from: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(pos, neg) bool per row: by advantage sign (paper) or reward sign (released code)."""
    if sign_from == "advantage":
        return batch.seq_adv > 0, batch.seq_adv < 0
    if sign_from == "reward":
        return batch.reward > 0, batch.reward <= 0
    raise ValueError(f"algo.sign_from must be 'advantage' or 'reward', got {sign_from!r}")


@dataclass
class _GroupBuffer:
    rows_left: int
    h: list[torch.Tensor]  # (n_i, H) policy-token hidden states per visited row chunk
    where: list[tuple[torch.Tensor, torch.Tensor]]  # (row, col) of those tokens in the batch
    pos: list[torch.Tensor]
    neg: list[torch.Tensor]


@torch.no_grad()
def score_batch(model, batch: Batch, *, micro_batch_size: int, temperature: float, device: torch.device,
                resrl: ResRLSettings | None, group_seed: dict[int, int], ref_model=None,
                micro_batch_tokens: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, list[GroupStats]]:
    """Return ``logp_old (B,T)``, ``ref_logp (B,T) | None``, ``weight (B,T)`` and per-group stats."""
    B, T = batch.input_ids.shape
    logp_old = torch.zeros(B, T)
    ref_logp = torch.zeros(B, T) if ref_model is not None else None
    weight = torch.ones(B, T)
    stats: list[GroupStats] = []
    buffers: dict[int, _GroupBuffer] = {}
    pos_row, neg_row = row_signs(batch, resrl.sign_from) if resrl else (None, None)
    hook = capture_hidden(model, resrl.hidden_layer) if resrl else contextlib.nullcontext([])
    with hook as captured:
        for idx in micro_batches(batch.attention_mask.sum(1), micro_batch_size, micro_batch_tokens):
            mb = trim(batch.rows(idx))
            ids = mb.input_ids.to(device)  # right-padded
            t = ids.shape[1]
            logp_old[idx, :t] = token_logp(causal_logits(model, ids), ids, temperature).float().cpu()
            if ref_model is not None:
                ref_logp[idx, :t] = token_logp(causal_logits(ref_model, ids), ids, temperature).float().cpu()
            if resrl is None:
                continue
            hidden = captured.pop()  # (b, t, H); position t-1 predicts token t
            r, c = mb.loss_mask[:, 1:].bool().nonzero(as_tuple=True)  # policy tokens 1..t-1 of (b, t-1)
            rows = idx[r]  # batch row of every policy token
            mb_groups, tok_groups = batch.group_id[idx], batch.group_id[rows]
            for g in mb_groups.unique().tolist():
                buf = buffers.setdefault(g, _GroupBuffer(int((batch.group_id == g).sum()), [], [], [], []))
                sel = tok_groups == g
                buf.h.append(hidden[r[sel], c[sel]])  # (n, H)
                buf.where.append((rows[sel], c[sel] + 1))
                buf.pos.append(pos_row[rows[sel]])
                buf.neg.append(neg_row[rows[sel]])
                buf.rows_left -= int((mb_groups == g).sum())
                if buf.rows_left == 0:  # the whole group has been scored: weight it now
                    w, s = resrl_group_weights(torch.cat(buf.h), torch.cat(buf.pos), torch.cat(buf.neg),
                                               seed=group_seed[g], **resrl.kwargs())
                    rows_, cols_ = torch.cat([a for a, _ in buf.where]), torch.cat([b for _, b in buf.where])
                    weight[rows_, cols_] = w.float().cpu()
                    stats.append(s)
                    del buffers[g]
    return logp_old, ref_logp, weight, stats
