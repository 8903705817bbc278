"""The evaluation report: one JSON file comparing runs, two PNG plots, a text table.

``report.json`` (``REPORT_VERSION``)::

    {"version", "created", "env": {name, id, kwargs}, "settings": {n, num_tasks, seed, temperature,
     top_p, max_new_tokens, max_context_tokens, history, task_seeds}, "policy": {backend, base_url, model},
     "model": {name, path}, "plots": {"pass_at_k": file, "family_success": file}, "notes": [str],
     "runs": [{"name", "checkpoint", "wall_s", "n", "num_tasks", "num_episodes", "avg_at_n",
               "pass_at_k": {"1": .., "2": .., ...}, "success", "score", "episode_len",
               "response_len", "invalid_rate", "truncated", "clipped", "env_errors",
               "families": {family: {tasks, episodes, success, score, episode_len, pass_at_k}},
               "tasks": [{task_id, seed, family, n, successes, mean_score}]}]}

``success`` per family is the per-category accuracy. ``notes`` are what the run should know about
its numbers (kwargs eval overrides, tasks drawn more than once). The API key is never written.
The family plot shows each success rate with its Wilson 95% interval over the family's episodes
(episodes of one task are not independent, so the interval is a lower bound on the uncertainty).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from resrl_agents.eval.metrics import EvalSummary

REPORT_VERSION = 2
PASS_AT_K_PNG = "pass_at_k.png"
FAMILY_PNG = "family_success.png"
REPORT_JSON = "report.json"
RUN_KEYS = ("name", "checkpoint", "wall_s", "n", "num_tasks", "num_episodes", "avg_at_n", "pass_at_k", "success",
            "score", "episode_len", "response_len", "invalid_rate", "truncated", "clipped", "env_errors", "families",
            "tasks")


@dataclass(frozen=True)
class RunResult:
    """One evaluated policy: its label, the checkpoint it came from, its metrics, its run time."""

    name: str
    checkpoint: str | None
    summary: EvalSummary
    wall_s: float


def _jsonable(x: Any) -> Any:
    """Dataclasses -> dicts; int keys (k of Pass@k) -> strings; NaN -> None (valid JSON)."""
    if dataclasses.is_dataclass(x):
        return {f.name: _jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and x != x:
        return None
    return x


def run_entry(r: RunResult) -> dict[str, Any]:
    return {"name": r.name, "checkpoint": r.checkpoint, "wall_s": r.wall_s, **_jsonable(r.summary)}


def build_report(cfg: Any, runs: Sequence[RunResult], notes: Sequence[str] = ()) -> dict[str, Any]:
    """The report dict of an ``EvalConfig`` and its runs (see the module docstring)."""
    return {
        "version": REPORT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "env": {"name": cfg.env.name, "id": cfg.env.id, "kwargs": {**cfg.env.kwargs, **cfg.env.eval_kwargs}},
        "settings": {k: getattr(cfg, k) for k in ("n", "num_tasks", "seed", "temperature", "top_p",
                                                  "max_new_tokens", "max_context_tokens", "history")}
        | {"task_seeds": list(cfg.task_seeds) if cfg.task_seeds else None},
        "policy": {"backend": cfg.policy.backend, "base_url": cfg.policy.base_url, "model": cfg.policy.model},
        "model": {"name": cfg.model.name, "path": cfg.model.path},
        "plots": {"pass_at_k": PASS_AT_K_PNG, "family_success": FAMILY_PNG} if cfg.plots else {},
        "notes": list(notes),
        "runs": [run_entry(r) for r in runs],
    }


def write_report(report: dict[str, Any], runs: Sequence[RunResult], out_dir: str | Path, *, plots: bool = True) -> Path:
    """Write ``report.json`` (and the plots) into ``out_dir``; return the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_JSON
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if plots and runs:
        plot_pass_at_k(runs, out / PASS_AT_K_PNG)
        plot_family_success(runs, out / FAMILY_PNG)
    return path


PLOT_EXTRA_HINT = "plots need matplotlib: pip install 'resrl-agents[plot]', or set plots=false"


def require_matplotlib() -> None:
    """Fail early (before any episode runs) when plots are asked for and matplotlib is missing:
    it is an optional extra (``plot``)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(PLOT_EXTRA_HINT) from e


def _pyplot():
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def wilson_interval(successes: float, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a success rate (Wilson 1927): valid near 0 and 1 and for few
    trials, where the normal approximation p ± z·sqrt(p(1-p)/n) leaves [0, 1] or collapses to 0."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def _y_top(values: Sequence[float]) -> float:
    """Top of the y axis: room above the largest value, so that small rates are not flat lines."""
    finite = [v for v in values if v == v]
    return min(1.05, max(0.05, 1.2 * max(finite, default=1.0)))


def plot_pass_at_k(runs: Sequence[RunResult], path: str | Path) -> None:
    """Pass@k against k (log2 axis), one line per run, each point labelled with its value."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in runs:
        ks = sorted(r.summary.pass_at_k)
        ys = [r.summary.pass_at_k[k] for k in ks]
        ax.plot(ks, ys, marker="o", label=f"{r.name} ({r.summary.num_tasks} tasks)")
        for k, y in zip(ks, ys):
            ax.annotate(f"{y:.3f}", (k, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    all_ks = sorted({k for r in runs for k in r.summary.pass_at_k})
    ax.set_xscale("log", base=2)
    ax.set_xticks(all_ks, [str(k) for k in all_ks])
    ax.minorticks_off()
    ax.set_ylim(0, _y_top([v for r in runs for v in r.summary.pass_at_k.values()]))
    ax.set(xlabel="k", ylabel="pass@k", title=f"Pass@k (n = {runs[0].summary.n})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_family_success(runs: Sequence[RunResult], path: str | Path) -> None:
    """Success rate per task family, grouped bars (one per run) with Wilson 95% intervals over the
    family's episodes, the value on each bar, and the number of tasks under each family."""
    plt = _pyplot()
    families = sorted({f for r in runs for f in r.summary.families})
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(families) + 2), 4.5))
    tops = []
    for i, r in enumerate(runs):
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(families))]
        fams = [r.summary.families.get(f) for f in families]
        ys = [f.success if f else 0.0 for f in fams]
        ci = [wilson_interval(f.success * f.episodes, f.episodes) if f else (0.0, 0.0) for f in fams]
        err = [[y - lo for y, (lo, _) in zip(ys, ci)], [hi - y for y, (_, hi) in zip(ys, ci)]]
        bars = ax.bar(xs, ys, width=width, yerr=err, capsize=3, label=r.name)
        ax.bar_label(bars, labels=[f"{y:.2f}" for y in ys], padding=2, fontsize=7)
        tops += [hi for _, hi in ci]
    tasks = {f: max(r.summary.families[f].tasks for r in runs if f in r.summary.families) for f in families}
    ax.set_xticks(range(len(families)), [f"{f}\n({tasks[f]} tasks)" for f in families], rotation=30, ha="right")
    ax.set_ylim(0, _y_top(tops))
    ax.set(ylabel="success (95% Wilson interval)", title="Success per task family")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_summary(report: dict[str, Any], out_dir: str | Path | None = None) -> str:
    """A plain-text table of each run's headline numbers (full run names), the notes, and where
    the report and plots were written (``out_dir``)."""
    n = report["settings"]["n"]
    width = max([len("run")] + [len(r["name"]) for r in report["runs"]])
    cols = [f"avg@{n}", f"pass@{n}", "success", "return", "ep_len", "invalid", "trunc", "clipped", "tasks"]
    lines = [f"{'run':<{width}} " + " ".join(f"{c:>8}" for c in cols)]
    for r in report["runs"]:
        vals = [r["avg_at_n"], r["pass_at_k"].get(str(n)), r["success"], r["score"], r["episode_len"],
                r["invalid_rate"], r["truncated"], r["clipped"]]
        lines.append(f"{r['name']:<{width}} " + " ".join(_fmt(v) for v in vals) + f" {r['num_tasks']:>8}")
    lines += [f"note: {note}" for note in report.get("notes", [])]
    if out_dir is not None:
        out = Path(out_dir)
        lines.append(f"report: {out / REPORT_JSON}")
        if report["plots"]:
            lines.append("plots:  " + ", ".join(str(out / f) for f in report["plots"].values()))
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return f"{'nan':>8}" if x is None else f"{x:>8.4f}"
