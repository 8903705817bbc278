"""A training step here against TRL's ``GRPOTrainer``, side by side on this machine.

Both sides train the same weights (saved once from this project's loader: SmolLM2-135M-Instruct
by default, the tiny model with ``--quick``) on the same prompts (the math env's 2-digit
additions, rendered by the same chat template), with the same group size, completion budget,
sampling (τ = 1, no top-p/top-k), learning rate, micro-batch size, thread count and one optimizer
step per training step, no KL and one PPO iteration. Each side runs in its own process, TRL's in
its own venv (its pins are not the main venv's): create it with

    RESRL_TRL=1 bash scripts/setup.sh       # .venv-trl: torch (CPU) + trl

Sides run in interleaved order (GRPO, ResRL, TRL; the order rotates every repeat), each child
does ``--warmup`` untimed steps, then ``--steps`` timed ones. Reported per side: median step time
and its phases (generation; scoring: our old log-probs + ResRL weights, or TRL's reward and
advantage pass; update: the forward-backward and optimizer step), and the child's peak RSS.

    python benchmarks/vs_trl.py --quick      # tiny model, a minute or two
    python benchmarks/vs_trl.py              # SmolLM2, ~70 s per step and side on 2 cores

Ends with
    ours/TRL step-time ratio: X.XX      (GRPO here / TRL GRPO)
    ResRL/TRL step-time ratio: X.XX
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIDES = ("grpo", "resrl", "trl")


# ---------------------------------------------------------------- preparation (main venv)
def task_seeds(seed: int, step: int, n: int) -> list[int]:
    """The task seeds of round 0 of a training step, drawn as ``RLRecipe._rollout_round`` draws them
    (the ours-side child checks that its prompts are these)."""
    import numpy as np

    rng = np.random.default_rng([seed, step, 0])
    return rng.integers(0, 2**31 - 1, size=n).tolist()


def prepare(args) -> Path:
    """Save the model once (both sides load these weights) and the prompts of every step."""
    import gymnasium as gym
    import torch

    import resrl_agents.envs  # noqa: F401  (registers the env ids)
    from resrl_agents.config.schema import ModelConfig
    from resrl_agents.models import load_policy
    from resrl_agents.rollout.agent_loop import first_messages, user_text

    out = Path(args.out)
    model_dir = out / f"model_{args.model}"
    if not (model_dir / "config.json").exists():
        model, tok = load_policy(ModelConfig(name=args.model, dtype="float32"), device=torch.device("cpu"))
        model.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
    env = gym.make("resrl_agents/Math-v0", source="arithmetic", difficulty=1, split="train")
    steps = []
    for step in range(args.warmup + args.steps):
        rows = []
        for s in task_seeds(args.seed, step, args.prompts):
            obs, info = env.reset(seed=s)
            rows.append({"prompt": first_messages(info, user_text(obs, info)), "answer": env.unwrapped._task.answer})
        steps.append(rows)
    (out / "prompts.json").write_text(json.dumps(steps))
    return model_dir


# ---------------------------------------------------------------- our side (main venv)
def run_ours(args) -> dict:
    import torch
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from resrl_agents.config.schema import register_configs
    from resrl_agents.trainers.recipe import RLRecipe

    torch.set_num_threads(args.threads)
    register_configs()
    overrides = ["env=math", "env.kwargs.difficulty=1", f"model={args.model}", f"algo={args.child}",
                 "trainer.progress=false", "trainer.tensorboard=false", f"trainer.seed={args.seed}",
                 f"trainer.output_dir={args.out}/ours_{args.child}", f"trainer.lr={args.lr}", "trainer.warmup_steps=0",
                 f"trainer.num_threads={args.threads}", f"trainer.micro_batch_size={args.micro}",
                 f"rollout.prompts_per_step={args.prompts}", f"rollout.group_size={args.group_size}",
                 f"rollout.max_new_tokens={args.max_new}", "rollout.temperature=1.0", "rollout.top_p=1.0",
                 f"trainer.steps={args.warmup + args.steps}", f"trainer.save_every={10**6}", *args.overrides]
    with initialize_config_module("resrl_agents.config", version_base="1.3"):
        recipe = RLRecipe(OmegaConf.to_object(compose("train", overrides=overrides)))
    recipe.setup()
    prompts = json.loads((Path(args.out) / "prompts.json").read_text())
    collect = recipe._collect

    def checked_collect(step: int):
        """The step's rollout, checked to start from the prompts TRL gets."""
        trajs, seen, rounds = collect(step)
        ours = [list(t.messages[: len(prompts[step][0]["prompt"])]) for t in trajs[:: args.group_size]]
        if ours != [p["prompt"] for p in prompts[step]]:
            raise RuntimeError(f"step {step}: our prompts differ from the ones TRL gets")
        return trajs, seen, rounds

    recipe._collect = checked_collect
    steps = []
    try:
        for step in range(args.warmup + args.steps):
            m = recipe.train_step(step)
            steps.append({"step": m["perf/step_s"], "generation": m["perf/rollout_s"], "scoring": m["perf/score_s"],
                          "update": m["perf/update_s"], "tokens": m["perf/trained_tokens"]})
    finally:
        recipe.cleanup()
    return {"steps": steps[args.warmup:]}


# ---------------------------------------------------------------- TRL's side (.venv-trl)
def run_trl(args) -> dict:
    import re

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(args.threads)
    model_dir = Path(args.out) / f"model_{args.model}"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = [r for step in json.loads((Path(args.out) / "prompts.json").read_text()) for r in step]

    def reward(completions, answer, **_):
        """1 when the last number of the answer is the sum (this project's verifier's verdict on these)."""
        out = []
        for c, a in zip(completions, answer):
            nums = re.findall(r"-?\d+", c[-1]["content"] if isinstance(c, list) else c)
            out.append(float(bool(nums) and nums[-1] == str(a).strip()))
        return out

    rows_per_step = args.prompts * args.group_size
    cfg = GRPOConfig(output_dir=f"{args.out}/trl", per_device_train_batch_size=args.micro,
                     gradient_accumulation_steps=rows_per_step // args.micro, num_generations=args.group_size,
                     max_completion_length=args.max_new, learning_rate=args.lr, lr_scheduler_type="constant",
                     warmup_steps=0, max_steps=args.warmup + args.steps, temperature=1.0, top_p=1.0, top_k=0,
                     beta=0.0, num_iterations=1, use_cpu=True, report_to="none", logging_steps=1,
                     save_strategy="no", shuffle_dataset=False, seed=args.seed, disable_tqdm=True,
                     dataloader_num_workers=0, bf16=False, fp16=False)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=Dataset.from_list(rows),
                          processing_class=tok)
    torch.set_num_threads(args.threads)  # after accelerate's set-up, which may change it
    phase = {"generation": 0.0, "gen_and_score": 0.0}

    def timed(name, fn):
        def wrapper(*a, **kw):
            tic = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phase[name] += time.perf_counter() - tic
        return wrapper

    trainer._generate = timed("generation", trainer._generate)
    trainer._generate_and_score_completions = timed("gen_and_score", trainer._generate_and_score_completions)
    steps: list[dict] = []

    class StepTimes(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.tic = time.perf_counter()
            phase.update(generation=0.0, gen_and_score=0.0)

        def on_step_end(self, *_, **__):
            total = time.perf_counter() - self.tic
            steps.append({"step": total, "generation": phase["generation"],
                          "scoring": phase["gen_and_score"] - phase["generation"],
                          "update": total - phase["gen_and_score"]})

    trainer.add_callback(StepTimes())
    trainer.train()
    return {"steps": steps[args.warmup:]}


# ---------------------------------------------------------------- orchestration
def child(args) -> None:
    result = run_trl(args) if args.child == "trl" else run_ours(args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def run_child(args, side: str, trl_python: str) -> dict:
    python = trl_python if side == "trl" else sys.executable
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
             if k not in ("child", "quick", "overrides", "trl_python") and v is not None]
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    if side == "trl":
        env.pop("PYTHONPATH")  # TRL's venv imports nothing of this project
    res = subprocess.run([python, __file__, f"--child={side}", *flags, *(args.overrides if side != "trl" else [])],
                         capture_output=True, text=True, env=env, cwd=REPO)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"{side} child failed ({res.returncode}):\n{res.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summary(results: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    out = {}
    for side, runs in results.items():
        steps = [s for r in runs for s in r["steps"]]
        out[side] = {k: statistics.median(s[k] for s in steps) for k in ("step", "generation", "scoring", "update")}
        out[side]["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        out[side]["n"] = len(steps)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the tiny model instead of SmolLM2")
    ap.add_argument("--model", default=None, help="smollm2 (default) | tiny")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--micro", type=int, default=8, help="rows per forward-backward on both sides")
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 3 quick, 1 otherwise)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per child")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per child (default 2 quick, 1 otherwise)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/vs_trl")
    ap.add_argument("--trl-python", default=str(REPO / ".venv-trl" / "bin" / "python"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="more Hydra overrides for our side")
    args = ap.parse_args()
    args.model = args.model or ("tiny" if args.quick else "smollm2")
    args.repeats = args.repeats or (3 if args.quick else 1)
    args.steps = args.steps or (2 if args.quick else 1)
    if args.child:
        return child(args)
    if not Path(args.trl_python).exists():
        sys.exit(f"no TRL venv at {args.trl_python}: create it with `RESRL_TRL=1 bash scripts/setup.sh` "
                 "(or pass --trl-python)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    prepare(args)
    load = os.getloadavg()[0]
    print(f"{args.model}: {args.prompts} prompts x {args.group_size} completions x <= {args.max_new} new tokens, "
          f"micro-batch {args.micro}, {args.threads} threads, {args.repeats} interleaved rounds of "
          f"{args.warmup}+{args.steps} steps per side; load average {load:.1f} on {os.cpu_count()} cores", flush=True)
    results: dict[str, list[dict]] = {s: [] for s in SIDES}
    for r in range(args.repeats):
        for side in SIDES[r % 3:] + SIDES[: r % 3]:
            results[side].append(run_child(args, side, args.trl_python))
            print(f"  round {r + 1} {side}: " + ", ".join(f"{s['step']:.2f}s" for s in results[side][-1]["steps"]), flush=True)
    table = summary(results)
    print(f"{'side':6} {'step s':>8} {'generation':>11} {'scoring':>8} {'update':>8} {'peak RSS MiB':>13}  (medians over n steps)")
    for side, row in table.items():
        print(f"{side:6} {row['step']:8.2f} {row['generation']:11.2f} {row['scoring']:8.2f} {row['update']:8.2f} "
              f"{row['peak_rss_mb']:13.0f}  n={row['n']}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"ours/TRL step-time ratio: {table['grpo']['step'] / table['trl']['step']:.2f}")
    print(f"ResRL/TRL step-time ratio: {table['resrl']['step'] / table['trl']['step']:.2f}")


if __name__ == "__main__":
    main()
