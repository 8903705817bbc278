"""Validation during training: the eval runner on the env's held-out split, with the policy that
is being trained (the trainer's own model and renderer, no checkpoint round trip).

It lives in ``eval/`` because it is evaluation: it needs envs, rollout and eval metrics, and
nothing of training. The trainer calls it (``trainers`` -> ``eval``); ``eval`` never imports
``trainers``, so there is no cycle. The same task seeds and sampling seeds are used at every
call, so the points of a validation curve differ only by the weights.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from resrl_agents.config.eval_schema import EvalConfig
from resrl_agents.config.schema import EnvConfig, RolloutConfig, ValidationConfig
from resrl_agents.eval.metrics import ks_for, pass_at_k_curve, summarize
from resrl_agents.eval.policies import LoadedPolicy
from resrl_agents.eval.runner import make_envs, run_episodes, task_seeds
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.env_pool import close_envs
from resrl_agents.rollout.policy import Policy


def check_validation_config(v: ValidationConfig) -> list[int]:
    """The Pass@k ks of ``v``; a clear error naming the ``trainer.eval`` key when it is unusable."""
    if v.num_tasks < 1 or v.batch_size < 1:
        raise ValueError(f"trainer.eval.num_tasks and trainer.eval.batch_size must be >= 1, "
                         f"got {v.num_tasks} and {v.batch_size}")
    if v.n < 0 or (v.n == 0 and not v.greedy):
        raise ValueError(f"trainer.eval.n must be >= 0 and something must run (n > 0 or greedy=true), "
                         f"got n={v.n}, greedy={v.greedy}")
    ks = list(v.ks) if v.ks else (ks_for(v.n) if v.n else [])
    bad = [k for k in ks if not 1 <= k <= v.n]
    if bad:
        raise ValueError(f"trainer.eval.ks={list(v.ks)}: every k must be in 1..trainer.eval.n={v.n} "
                         f"(unbiased Pass@k needs k <= n samples); raise n or drop {bad}")
    return ks


class Validator:
    """``val/*`` metrics of a policy on ``num_tasks`` held-out tasks: one greedy episode per task
    (``val/avg@1_greedy``) and ``n`` sampled ones (``val/avg@<n>``, unbiased ``val/pass@<k>``).

    Episodes use training's history layout and token budgets (``rollout.*``), so validation
    measures the policy training optimizes. The envs are built once, here.
    """

    def __init__(self, env_cfg: EnvConfig, v: ValidationConfig, r: RolloutConfig) -> None:
        self.ks = check_validation_config(v)
        self.greedy = EvalConfig(env=env_cfg, n=1, num_tasks=v.num_tasks, seed=v.seed, temperature=0.0, top_p=1.0,
                                 max_new_tokens=r.max_new_tokens, max_context_tokens=r.max_context_tokens,
                                 history=r.history, batch_size=v.batch_size) if v.greedy else None
        self.sampled = EvalConfig(env=env_cfg, n=v.n, num_tasks=v.num_tasks, seed=v.seed, temperature=v.temperature,
                                  top_p=v.top_p, max_new_tokens=r.max_new_tokens,
                                  max_context_tokens=r.max_context_tokens, history=r.history,
                                  batch_size=v.batch_size) if v.n else None
        self.seeds = task_seeds(self.greedy or self.sampled)
        self.envs = make_envs(env_cfg, min(v.batch_size, v.num_tasks * max(v.n, 1)))

    def __call__(self, policy: Policy, renderer: ChatRenderer) -> dict[str, float]:
        tic = time.perf_counter()
        lp = LoadedPolicy(policy, renderer)  # borrowed: the trainer owns and closes the policy
        out: dict[str, float] = {}
        if self.greedy is not None:
            out["val/avg@1_greedy"] = summarize(run_episodes(lp, self.envs, self.seeds, self.greedy), 1).avg_at_n
        if self.sampled is not None:
            n = self.sampled.n
            s = summarize(run_episodes(lp, self.envs, self.seeds, self.sampled), n)
            curve = pass_at_k_curve([t.successes for t in s.tasks if t.n == n], n, self.ks)
            out |= {f"val/avg@{n}": s.avg_at_n, "val/response_len": s.response_len}
            out |= {f"val/pass@{k}": p for k, p in curve.items()}
        return out | {"perf/val_s": time.perf_counter() - tic}

    def close(self) -> None:
        close_envs(self.envs)


def validation_curve(output_dir: str | Path) -> Path | None:
    """Print the run's validation curve (every ``val/*`` record of ``metrics.jsonl``) as a table, and
    write it as ``val_curve.png`` when matplotlib is installed; returns the PNG's path."""
    path = Path(output_dir) / "metrics.jsonl"
    rows = [r for r in map(json.loads, path.read_text().splitlines()) if any(k.startswith("val/") for k in r)]
    if not rows:
        return None
    last = rows[-1]
    passes = sorted((k for k in last if k.startswith("val/pass@")), key=lambda k: int(k.split("@")[1]))
    keys = sorted(k for k in last if k.startswith("val/avg@")) + passes[-1:]  # greedy, avg@n, the largest pass@k
    print("validation (held-out): " + "  ".join(f"{k[4:]:>14}" for k in keys))
    for r in rows:
        print(f"  step {r['step']:>6}        " + "  ".join(f"{r.get(k, math.nan):14.3f}" for k in keys))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k in keys:
        ax.plot([r["step"] for r in rows], [r.get(k, math.nan) for r in rows], marker="o", label=k[4:])
    ax.set(xlabel="step", ylabel="held-out success", ylim=(0, 1), title="validation during training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = Path(output_dir) / "val_curve.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print(f"wrote {png}")
    return png
