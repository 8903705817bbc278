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
from typing import Iterator, NamedTuple

import torch

from resrl_agents.rollout.types import Batch
from resrl_agents.trainers.loss import token_logp
from resrl_agents.trainers.resrl import GATES, GroupStats, resrl_group_weights


@dataclass(frozen=True)
class ResRLSettings:
    """The ResRL knobs of ``AlgoConfig`` (see there), handed to :func:`resrl_group_weights`."""

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

    def kwargs(self) -> dict:
        keys = ("rank", "rank_tol", "max_pos_tokens", "min_pos_tokens", "w_min", "lam", "q_lo", "q_hi", "niter",
                "residual_norm", "gate", "span_tol")
        return {k: getattr(self, k) for k in keys}

    def __post_init__(self):
        if self.hidden_position not in ("predicting", "own"):
            raise ValueError(f"algo.hidden_position must be 'predicting' or 'own', got {self.hidden_position!r}")
        if self.gate not in GATES:
            raise ValueError(f"algo.gate must be one of {', '.join(GATES)}, got {self.gate!r}")


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


@dataclass
class _GroupBuffer:
    rows_left: int
    h: list[torch.Tensor]  # (n_i, H) policy-token hidden states per visited row chunk
    where: list[tuple[torch.Tensor, torch.Tensor]]  # (row, col) of those tokens in the batch
    pos: list[torch.Tensor]
    neg: list[torch.Tensor]


class Scores(NamedTuple):
    """What the scoring pass returns; ``residual``/``in_span`` are ResRL's per-token diagnostics."""

    logp_old: torch.Tensor  # (B, T)
    ref_logp: torch.Tensor | None  # (B, T), with a reference model
    weight: torch.Tensor  # (B, T) ResRL weight, 1 where not weighted
    stats: dict[int, GroupStats]  # group id -> what its weighting did
    residual: torch.Tensor  # (B, T) residual energy d of positive/negative tokens, nan elsewhere
    in_span: torch.Tensor  # (B, T) bool, negatives inside their group's positive span


@torch.no_grad()
def score_batch(model, batch: Batch, *, micro_batch_size: int, temperature: float, device: torch.device,
                resrl: ResRLSettings | None, group_seed: dict[int, int], ref_model=None,
                micro_batch_tokens: int | None = None) -> Scores:
    """Old and reference log-probs of every token, and ResRL weights of every whole group."""
    B, T = batch.input_ids.shape
    logp_old = torch.zeros(B, T)
    ref_logp = torch.zeros(B, T) if ref_model is not None else None
    weight = torch.ones(B, T)
    residual = torch.full((B, T), float("nan"))
    in_span = torch.zeros(B, T, dtype=torch.bool)
    stats: dict[int, GroupStats] = {}
    buffers: dict[int, _GroupBuffer] = {}
    if resrl is not None and batch.success is None:
        raise ValueError("ResRL needs batch.success (who is positive); collate() fills it")
    pos_row, neg_row = (batch.success, ~batch.success) if resrl else (None, None)
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
            c_h = c if resrl.hidden_position == "predicting" else c + 1  # the state that weighs each token
            rows = idx[r]  # batch row of every policy token
            mb_groups, tok_groups = batch.group_id[idx], batch.group_id[rows]
            for g in mb_groups.unique().tolist():
                buf = buffers.setdefault(g, _GroupBuffer(int((batch.group_id == g).sum()), [], [], [], []))
                sel = tok_groups == g
                buf.h.append(hidden[r[sel], c_h[sel]])  # (n, H)
                buf.where.append((rows[sel], c[sel] + 1))
                buf.pos.append(pos_row[rows[sel]])
                buf.neg.append(neg_row[rows[sel]])
                buf.rows_left -= int((mb_groups == g).sum())
                if buf.rows_left == 0:  # the whole group has been scored: weight it now
                    try:
                        w, s = resrl_group_weights(torch.cat(buf.h), torch.cat(buf.pos), torch.cat(buf.neg),
                                                   seed=group_seed[g], **resrl.kwargs())
                    except FloatingPointError as e:
                        raise FloatingPointError(f"ResRL weights of group {g}: {e}") from None
                    rows_, cols_ = torch.cat([a for a, _ in buf.where]), torch.cat([b for _, b in buf.where])
                    weight[rows_, cols_] = w.float().cpu()
                    if s.weighted:
                        residual[rows_, cols_], in_span[rows_, cols_] = s.residual.float().cpu(), s.in_span.cpu()
                    stats[g] = s
                    del buffers[g]
    return Scores(logp_old, ref_logp, weight, stats, residual, in_span)
