"""Evaluation metrics over n samples per task: Avg@n, unbiased Pass@k, per-family breakdowns.

Notation: a task is sampled n times and c of the samples succeed.

* Avg@n = mean over tasks of c / n: the mean of n independent Pass@1 estimates (the paper's
  "Avg@16").
* Pass@k = mean over tasks of 1 - C(n - c, k) / C(n, k): the probability that at least one of k
  samples drawn without replacement from the n succeeds (Chen et al. 2021, "Evaluating Large
  Language Models Trained on Code", eq. 1). It is unbiased for k <= n, unlike 1 - (1 - c/n)^k.

A task is one ``task_id``. Task seeds that draw the same task (more seeds than the split has
tasks: ``num_tasks=32`` on 7 ALFWorld games) pool their episodes into that task, counted once;
such a task has more than n samples, and its c / n and Pass@k use all of them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from resrl_agents.rollout.types import Trajectory


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased Pass@k of one task with c successes among n samples.

    Computed as 1 - prod_{i=n-c+1}^{n} (1 - k / i), which equals 1 - C(n-c, k) / C(n, k) without
    forming the (huge) binomials.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every k-subset holds a success
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def ks_for(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to n, plus n itself when n is not a power of two."""
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    return ks if ks[-1] == n else ks + [n]


def pass_at_k_curve(successes: Sequence[int], n: int, ks: Sequence[int] | None = None) -> dict[int, float]:
    """Mean Pass@k over tasks (``successes[j]`` = c of task j) for every k in ``ks``."""
    ks = ks_for(n) if ks is None else list(ks)
    if not successes:
        return {k: float("nan") for k in ks}
    return {k: float(np.mean([pass_at_k(n, c, k) for c in successes])) for k in ks}


def avg_at_n(successes: Sequence[int], n: int) -> float:
    """Mean over tasks of c / n (Avg@n)."""
    return float(np.mean([c / n for c in successes])) if successes else float("nan")


@dataclass(frozen=True)
class TaskResult:
    """The n samples of one task (one reset seed)."""

    task_id: str
    seed: int
    family: str
    n: int
    successes: int  # c
    mean_score: float  # mean episode return over the n samples


@dataclass(frozen=True)
class FamilyResult:
    """Success (accuracy), score and length over the episodes of one task family / category."""

    tasks: int
    episodes: int
    success: float
    score: float
    episode_len: float
    pass_at_k: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalSummary:
    """Everything the report shows about one policy: headline numbers, per family, per task."""

    n: int
    num_tasks: int
    num_episodes: int
    avg_at_n: float
    pass_at_k: dict[int, float]
    success: float  # fraction of episodes won (equals avg_at_n when every task has n samples)
    score: float  # mean episode return
    episode_len: float  # mean turns per episode
    response_len: float  # mean policy tokens per episode
    invalid_rate: float  # invalid actions / turns
    truncated: float  # fraction of episodes that did not end on their own (turn cap, context cap, or a reply cut)
    clipped: float  # fraction of replies cut at max_new_tokens
    env_errors: int  # episodes ended by an env crash
    families: dict[str, FamilyResult]
    tasks: list[TaskResult]


def task_results(trajs: Sequence[Trajectory]) -> list[TaskResult]:
    """Group episodes by task: ``task_id`` (``group_id`` when an env gives none), so seeds that
    drew the same task pool their samples."""
    groups: dict[str | int, list[Trajectory]] = defaultdict(list)
    for t in trajs:
        groups[t.task_id or t.group_id].append(t)
    out = []
    for ts in groups.values():
        out.append(TaskResult(task_id=ts[0].task_id, seed=ts[0].seed, family=ts[0].family, n=len(ts),
                              successes=sum(bool(t.won) for t in ts),
                              mean_score=float(np.mean([t.reward for t in ts]))))
    return out


def task_curve(tasks: Sequence[TaskResult], n: int) -> tuple[float, dict[int, float]]:
    """Avg@n and Pass@k over the tasks that got at least n samples, each with its own count."""
    full = [t for t in tasks if t.n >= n]
    if not full:
        return float("nan"), {k: float("nan") for k in ks_for(n)}
    return (float(np.mean([t.successes / t.n for t in full])),
            {k: float(np.mean([pass_at_k(t.n, t.successes, k) for t in full])) for k in ks_for(n)})


def _family(trajs: Sequence[Trajectory], tasks: Sequence[TaskResult], n: int) -> FamilyResult:
    return FamilyResult(tasks=len(tasks), episodes=len(trajs),
                        success=float(np.mean([t.won for t in trajs])),
                        score=float(np.mean([t.reward for t in trajs])),
                        episode_len=float(np.mean([t.num_turns for t in trajs])),
                        pass_at_k=task_curve(tasks, n)[1])


def summarize(trajs: Sequence[Trajectory], n: int) -> EvalSummary:
    """All metrics of one evaluation run. Pass@k uses only tasks that got at least n samples."""
    if not trajs:
        raise ValueError("no episodes to summarize")
    tasks = task_results(trajs)
    avg, curve = task_curve(tasks, n)
    turns = sum(t.num_turns for t in trajs)
    by_family: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajs:
        by_family[t.family or "all"].append(t)
    families = {}
    for name, ts in sorted(by_family.items()):
        fam_tasks = [r for r in tasks if (r.family or "all") == name]
        families[name] = _family(ts, fam_tasks, n)
    return EvalSummary(
        n=n, num_tasks=len(tasks), num_episodes=len(trajs), avg_at_n=avg, pass_at_k=curve,
        success=float(np.mean([t.won for t in trajs])),
        score=float(np.mean([t.reward for t in trajs])),
        episode_len=turns / len(trajs),
        response_len=float(np.mean([t.response_length for t in trajs])),
        invalid_rate=sum(tt.invalid for t in trajs for tt in t.turns) / max(turns, 1),
        truncated=float(np.mean([t.cut for t in trajs])),
        clipped=sum(tt.clipped for t in trajs for tt in t.turns) / max(turns, 1),
        env_errors=sum(bool(t.error) for t in trajs),
        families=families, tasks=tasks,
    )
