"""Evaluation: n episodes per task with the training envs, prompts, parsers and agent loop.

``run_eval`` evaluates one policy, or several checkpoints one after the other, and writes one
report (JSON + plots) comparing them. Each task is a reset seed; its n episodes form one group
(``group_id`` = task index) so per-task success counts feed Pass@k directly.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Sequence

import resrl_agents.envs  # noqa: F401  (registers the env ids)
from resrl_agents.config.errors import ConfigError
from resrl_agents.config.eval_schema import EvalConfig
from resrl_agents.config.schema import EnvConfig
from resrl_agents.eval.metrics import summarize
from resrl_agents.eval.policies import LoadedPolicy, make_policy, resolve_device
from resrl_agents.eval.report import REPORT_JSON, RunResult, build_report, require_matplotlib, write_report
from resrl_agents.rollout.agent_loop import rollout
from resrl_agents.rollout.env_pool import EnvPool, close_envs, make_envs as make_env_copies
from resrl_agents.rollout.types import Trajectory

log = logging.getLogger(__name__)
_CHUNK_SEED_STRIDE = 1_000_003


def overridden_kwargs(env_cfg: EnvConfig) -> list[str]:
    """One line per training kwarg that ``eval_kwargs`` replaces (e.g. ``split``), for the log and
    the report: eval must never use another split than the user thinks without a word."""
    return [f"env.eval_kwargs.{k}={v} overrides env.kwargs.{k}={env_cfg.kwargs[k]} for evaluation"
            for k, v in env_cfg.eval_kwargs.items() if k in env_cfg.kwargs and env_cfg.kwargs[k] != v]


def make_envs(env_cfg: EnvConfig, count: int, workers: int = 0) -> list[Any] | EnvPool:
    """``count`` copies of the eval env (``kwargs`` updated by ``eval_kwargs``); copies share the
    first one's heavy resources through ``shared_kwargs`` (one verifier for all). With ``workers``
    > 0 they live in that many processes and step in parallel (an :class:`EnvPool`)."""
    kwargs = {**env_cfg.kwargs, **env_cfg.eval_kwargs}
    for note in overridden_kwargs(env_cfg):
        log.warning(note)
    return EnvPool(env_cfg.id, kwargs, count, workers) if workers > 0 else make_env_copies(env_cfg.id, kwargs, count)


def task_seeds(cfg: EvalConfig) -> list[int]:
    """Reset seed of each task: ``task_seeds`` when given, else ``seed, seed + 1, ...``."""
    if cfg.task_seeds:
        return list(cfg.task_seeds)
    return [cfg.seed + j for j in range(cfg.num_tasks)]


def run_episodes(lp: LoadedPolicy, envs: Sequence[Any] | EnvPool, seeds: Sequence[int],
                 cfg: EvalConfig) -> list[Trajectory]:
    """n episodes per task seed, ``len(envs)`` at a time, through ``rollout`` (the training loop)."""
    plan = [(s, j) for j, s in enumerate(seeds) for _ in range(cfg.n)]  # (reset seed, task index)
    out: list[Trajectory] = []
    pooled = isinstance(envs, EnvPool)  # a pool takes any number of episodes up to its size
    for c, start in enumerate(range(0, len(plan), len(envs))):
        chunk = plan[start:start + len(envs)]
        out += rollout(envs if pooled else envs[:len(chunk)], [s for s, _ in chunk], [j for _, j in chunk],
                       lp.policy, lp.renderer, history=cfg.history, max_new_tokens=cfg.max_new_tokens,
                       max_context_tokens=cfg.max_context_tokens, temperature=cfg.temperature,
                       top_p=cfg.top_p, seed=cfg.seed * _CHUNK_SEED_STRIDE + c)
        log.info("episodes %d/%d", len(out), len(plan))
    return out


def run_labels(cfg: EvalConfig) -> list[tuple[str, str | None]]:
    """(label, checkpoint) per run: one per entry of ``checkpoints``, else the configured policy."""
    if not cfg.checkpoints:
        if cfg.policy.backend == "openai":
            return [(str(cfg.policy.model), None)]
        return [(Path(cfg.model.path).name if cfg.model.path else cfg.model.name, None)]
    labels = [Path(c).name or c for c in cfg.checkpoints]
    if len(set(labels)) < len(labels):  # step_10 of two runs: keep the parent too
        labels = ["/".join(Path(c).parts[-2:]) for c in cfg.checkpoints]
    if len(set(labels)) < len(labels):
        labels = [f"{i}:{lab}" for i, lab in enumerate(labels)]
    return list(zip(labels, cfg.checkpoints))


def episode_record(t: Trajectory) -> dict[str, Any]:
    """One jsonl line: the task, the outcome, and every action as text."""
    return {"task": t.group_id, "task_id": t.task_id, "seed": t.seed, "family": t.family, "reward": t.reward,
            "won": t.won, "turns": t.num_turns, "terminated": t.terminated, "truncated": t.truncated,
            "error": t.error, "actions": [x.action_text for x in t.turns],
            "invalid": [x.invalid for x in t.turns], "messages": list(t.messages)}


def _file_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "run"


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate every run of ``run_labels(cfg)``; write and return the report."""
    import torch

    out_dir = Path(cfg.output_dir)
    if (out_dir / REPORT_JSON).exists():
        raise ConfigError(f"output_dir={out_dir} holds the report of an earlier eval; give another output_dir "
                          "(by default every eval gets a new timestamped folder under runs/eval)")
    if cfg.plots:
        require_matplotlib()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = task_seeds(cfg)
    envs = make_envs(cfg.env, min(cfg.batch_size, len(seeds) * cfg.n), cfg.env_workers)
    results: list[RunResult] = []
    try:
        for label, checkpoint in run_labels(cfg):
            tic = time.perf_counter()
            lp = make_policy(cfg.policy, cfg.model, resolve_device(cfg.device), checkpoint=checkpoint, seed=cfg.seed)
            try:
                trajs = run_episodes(lp, envs, seeds, cfg)
            finally:
                release, lp = lp.close, None
                release()
            if cfg.save_episodes:
                with open(out_dir / f"episodes_{_file_label(label)}.jsonl", "w", encoding="utf-8") as f:
                    f.writelines(json.dumps(episode_record(t), ensure_ascii=False) + "\n" for t in trajs)
            results.append(RunResult(label, checkpoint, summarize(trajs, cfg.n), time.perf_counter() - tic))
            log.info("%s: avg@%d %.4f", label, cfg.n, results[-1].summary.avg_at_n)
    finally:
        close_envs(envs)
    notes = overridden_kwargs(cfg.env) + repeated_tasks(results, len(seeds))
    report = build_report(cfg, results, notes)
    write_report(report, results, out_dir, plots=cfg.plots)
    return report


def repeated_tasks(results: Sequence[RunResult], num_seeds: int) -> list[str]:
    """A note when the task seeds drew fewer distinct tasks than there are seeds (a split smaller
    than num_tasks): each task is counted once, with every episode it got."""
    drawn = max(r.summary.num_tasks for r in results)
    if drawn >= num_seeds:
        return []
    note = (f"{num_seeds} task seeds drew only {drawn} distinct tasks (the split is smaller than num_tasks?); "
            "each task is counted once, with all its episodes")
    log.warning(note)
    return [note]
