"""Keep one step's ResRL groups for inspection (``trainer.inspect_every``): every row's context as
text and its policy tokens with weight, residual energy and in-span flag, one small gzipped JSON
per kept step, ``<output_dir>/inspect/step_<N>.json.gz``. ``python -m resrl_agents.inspect`` reads it.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path

import torch

from resrl_agents.rollout.types import Batch, Trajectory
from resrl_agents.trainers.resrl import GroupStats


def _runs(mask: list[int]) -> list[tuple[int, int, int]]:
    """(value, start, end) of the constant runs of a 0/1 list."""
    out, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            out.append((mask[start], start, i))
            start = i
    return out


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def row_record(batch: Batch, i: int, residual: torch.Tensor, in_span: torch.Tensor, tokenizer) -> dict:
    """One row: context segments as text, policy segments token by token with their numbers."""
    n = int(batch.attention_mask[i].sum())
    ids, mask = batch.input_ids[i, :n].tolist(), batch.loss_mask[i, :n].int().tolist()
    segments = []
    for policy, a, b in _runs(mask):
        if not policy:
            segments.append({"context": tokenizer.decode(ids[a:b])})
            continue
        segments.append({"tokens": [tokenizer.decode([t]) for t in ids[a:b]],
                         "weight": [round(float(w), 6) for w in batch.weight[i, a:b]],
                         "residual": [_finite(float(d)) for d in residual[i, a:b]],
                         "in_span": [bool(s) for s in in_span[i, a:b]]})
    return {"group_id": int(batch.group_id[i]), "reward": float(batch.reward[i]), "success": bool(batch.success[i]),
            "adv": float(batch.seq_adv[i]), "segments": segments}


def write_inspection(output_dir: str, step: int, trajs: list[Trajectory], batch: Batch, residual: torch.Tensor,
                     in_span: torch.Tensor, stats: dict[int, GroupStats], tokenizer, settings: dict) -> Path:
    """Write step ``step`` (0-based; the file is named by the 1-based step, like checkpoints)."""
    task = {t.group_id: t.task_id for t in trajs}
    groups: dict[int, dict] = {}
    for i, g in enumerate(batch.group_id.tolist()):
        if g not in groups:
            s = stats.get(g)
            groups[g] = {"group_id": g, "task_id": task.get(g, ""), "rows": [],
                         "weighted": bool(s and s.weighted), "reason": s.reason if s else "",
                         "rank": s.rank if s else 0, "degenerate": bool(s and s.degenerate),
                         "n_neg": s.n_neg if s else 0, "n_in_span": s.n_in_span if s else 0}
        groups[g]["rows"].append(row_record(batch, i, residual, in_span, tokenizer))
    record = {"step": step + 1, "settings": settings, "groups": list(groups.values())}
    out = Path(output_dir) / "inspect" / f"step_{step + 1:06d}.json.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(tmp, out)  # atomic: a reader never sees half a file
    return out
