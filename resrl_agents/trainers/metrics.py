"""Metric sinks: a JSONL file (always), TensorBoard and W&B (optional). Keys are grouped by
prefix (``rollout/``, ``reward/``, ``resrl/``, ``loss/``, ``perf/``) and defined in docs/metrics.md.
A few sampled episodes per step go, as text, to ``samples.jsonl`` next to ``metrics.jsonl``.

A resumed run continues from its checkpoint's step, and a run killed after that checkpoint had
already logged later steps: ``resume_step`` drops those records (and TensorBoard's, with its
``purge_step``), so every step appears once.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from resrl_agents.rollout.types import Trajectory

METRICS_JSONL, SAMPLES_JSONL = "metrics.jsonl", "samples.jsonl"
SAMPLES_PER_STEP = 2


class MetricsLogger:
    def __init__(self, output_dir: str | Path, *, tensorboard: bool, wandb: bool, run_config: dict | None = None,
                 resume_step: int | None = None):
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            for name in (METRICS_JSONL, SAMPLES_JSONL):
                drop_records_after(self.dir / name, resume_step)
        self.jsonl = open(self.dir / METRICS_JSONL, "a", encoding="utf-8")
        self.samples = None  # opened by the first log_samples (SFT logs none)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + 1  # TensorBoard hides older events >= this step
            self.tb = SummaryWriter(str(self.dir / "tensorboard"), purge_step=purge)
        self.wandb = None
        if wandb:
            import wandb as wb  # optional extra

            self.wandb = wb.init(project="resrl-agents", config=run_config, dir=str(self.dir))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        self.jsonl.write(json.dumps({"step": step, **clean}) + "\n")
        self.jsonl.flush()
        for k, v in metrics.items():
            if self.tb is not None and isinstance(v, (int, float)) and math.isfinite(v):
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(metrics, step=step)

    def log_samples(self, step: int, samples: Sequence[dict]) -> None:
        """One line per sampled episode: the step and what :func:`sample_records` keeps."""
        if self.samples is None:
            self.samples = open(self.dir / SAMPLES_JSONL, "a", encoding="utf-8")
        self.samples.writelines(json.dumps({"step": step, **s}, ensure_ascii=False) + "\n" for s in samples)
        self.samples.flush()

    def close(self) -> None:
        self.jsonl.close()
        if self.samples is not None:
            self.samples.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def sample_records(trajs: Sequence[Trajectory], k: int = SAMPLES_PER_STEP) -> list[dict]:
    """The first episode of each of the first ``k`` groups, as text: the conversation the policy
    had, its return, and whether it was cut (what a person reads to see what is being learned)."""
    first: dict[int, Trajectory] = {}
    for t in trajs:
        first.setdefault(t.group_id, t)
    return [{"task_id": t.task_id, "reward": t.reward, "won": t.won, "truncated": t.cut,
             "clipped_turns": sum(x.clipped for x in t.turns), "messages": list(t.messages)}
            for t in list(first.values())[:k]]


def drop_records_after(path: Path, step: int) -> None:
    """Rewrite the jsonl ``path`` without records whose ``step`` is above ``step`` (atomically)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if line.strip() and json.loads(line)["step"] <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(keep), encoding="utf-8")
    os.replace(tmp, path)


def read_metrics(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
