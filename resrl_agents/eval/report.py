"""The evaluation report: one JSON file comparing runs, two PNG plots, a text table.

``report.json`` (``REPORT_VERSION``)::

    {"version", "created", "env": {name, id, kwargs}, "settings": {n, num_tasks, seed, temperature,
     top_p, max_new_tokens, max_context_tokens, history, task_seeds}, "policy": {backend, base_url, model},
     "model": {name, path}, "plots": {"pass_at_k": file, "family_success": file},
     "runs": [{"name", "checkpoint", "wall_s", "n", "num_tasks", "num_episodes", "avg_at_n",
               "pass_at_k": {"1": .., "2": .., ...}, "success", "score", "episode_len",
               "response_len", "invalid_rate", "truncated", "env_errors",
               "families": {family: {tasks, episodes, success, score, episode_len, pass_at_k}},
               "tasks": [{task_id, seed, family, n, successes, mean_score}]}]}

``success`` per family is the per-category accuracy. The API key is never written.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from resrl_agents.eval.metrics import EvalSummary

REPORT_VERSION = 1
PASS_AT_K_PNG = "pass_at_k.png"
FAMILY_PNG = "family_success.png"
REPORT_JSON = "report.json"
RUN_KEYS = ("name", "checkpoint", "wall_s", "n", "num_tasks", "num_episodes", "avg_at_n", "pass_at_k", "success",
            "score", "episode_len", "response_len", "invalid_rate", "truncated", "env_errors", "families", "tasks")


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


def build_report(cfg: Any, runs: Sequence[RunResult]) -> dict[str, Any]:
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


def plot_pass_at_k(runs: Sequence[RunResult], path: str | Path) -> None:
    """Pass@k against k (log2 axis), one line per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        ks = sorted(r.summary.pass_at_k)
        ax.plot(ks, [r.summary.pass_at_k[k] for k in ks], marker="o", label=r.name)
    all_ks = sorted({k for r in runs for k in r.summary.pass_at_k})
    ax.set_xscale("log", base=2)
    ax.set_xticks(all_ks, [str(k) for k in all_ks])
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set(xlabel="k", ylabel="pass@k", title=f"Pass@k (n = {runs[0].summary.n})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_family_success(runs: Sequence[RunResult], path: str | Path) -> None:
    """Success rate per task family, grouped bars, one bar per run."""
    plt = _pyplot()
    families = sorted({f for r in runs for f in r.summary.families})
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(families) + 2), 4))
    for i, r in enumerate(runs):
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(families))]
        ys = [r.summary.families[f].success if f in r.summary.families else 0.0 for f in families]
        ax.bar(xs, ys, width=width, label=r.name)
    ax.set_xticks(range(len(families)), families, rotation=30, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set(ylabel="success", title="Success per task family")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_summary(report: dict[str, Any]) -> str:
    """A plain-text table of the headline numbers of each run."""
    n = report["settings"]["n"]
    lines = [f"{'run':<28} {'avg@' + str(n):>8} {'pass@' + str(n):>8} {'success':>8} {'score':>8} {'ep_len':>7}"]
    for r in report["runs"]:
        top = r["pass_at_k"].get(str(n))
        lines.append(f"{r['name'][:28]:<28} {_fmt(r['avg_at_n'])} {_fmt(top)} {_fmt(r['success'])} "
                     f"{_fmt(r['score'])} {r['episode_len']:>7.2f}")
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return f"{'nan':>8}" if x is None else f"{x:>8.4f}"
